const http = require("http");
const ms = require("ms");
http
  .createServer((req, res) => res.end(`pnpm installed ms: ${ms(90000)}\n`))
  .listen(process.env.PORT || 3000);
