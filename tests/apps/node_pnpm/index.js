const fs = require("fs");
const http = require("http");
const ms = require("ms");
const built = Number(fs.readFileSync(__dirname + "/built.txt", "utf8"));
http
  .createServer((req, res) => res.end(`pnpm installed ms: ${ms(built)}\n`))
  .listen(process.env.PORT || 3000);
