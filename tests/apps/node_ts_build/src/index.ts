import express from "express";

const greeting: string = "Hello from TypeScript, compiled at build time";
const app = express();

app.get("/", (_req, res) => {
  res.type("text/plain").send(`${greeting}\n`);
});

const port: number = Number(process.env.PORT) || 3000;
app.listen(port, () => console.log(`listening on ${port}`));
