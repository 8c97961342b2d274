// The web process: answers on $PORT with the text the build script wrote.
const fs = require("fs");
const express = require("express");
const app = express();
const built = fs.readFileSync(__dirname + "/dist/message.txt", "utf8");
app.get("/", (req, res) => res.send(built));
app.listen(Number(process.env.PORT), "127.0.0.1");
