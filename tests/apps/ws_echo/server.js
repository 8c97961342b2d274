// WebSocket echo on $PORT (every message comes back prefixed with this process's pid),
// plain HTTP answers for the health check, and /events: server-sent events, one every
// 200 ms, to show the router does not buffer streams.
const http = require("http");
const { WebSocketServer } = require("ws");

const server = http.createServer((req, res) => {
  if (req.url === "/events") {
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
    let n = 0;
    const timer = setInterval(() => {
      res.write(`data: ${n++}\n\n`);
      if (n === 5) { clearInterval(timer); res.end(); }
    }, 200);
    req.on("close", () => clearInterval(timer));
    return;
  }
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`ws-echo ${process.pid}\n`);
});

const wss = new WebSocketServer({ server });
wss.on("connection", (socket, req) => {
  socket.send(`hello from ${process.pid} proto=${req.headers["x-forwarded-proto"]}`);
  socket.on("message", (data) => socket.send(`${process.pid}: ${data}`));
});

server.listen(Number(process.env.PORT || 5000), "127.0.0.1", () => {
  console.log(`ws-echo listening on ${process.env.PORT}`);
});
