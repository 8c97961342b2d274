// A Heroku-style Node app: ioredis 4 from REDIS_URL (redis://:password@host:port, so it
// sends AUTH <password> only), keys without any prefix, as Bull and friends write them.
const http = require("http");
const Redis = require("ioredis");

const redis = new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: 2 });
redis.on("error", (err) => console.error("redis error:", err.message));

async function handle(req, res) {
  const url = new URL(req.url, "http://app");
  if (url.pathname === "/count") {
    const hits = await redis.incr("hits");
    await redis.lpush("bull:work:wait", `job-${hits}`);
    return { hits, queued: await redis.llen("bull:work:wait") };
  }
  if (url.pathname === "/whoami") {
    return { user: await redis.call("ACL", "WHOAMI"), client: require("ioredis/package.json").version };
  }
  if (url.pathname === "/get") {
    return { value: await redis.get(url.searchParams.get("key")) };
  }
  return { ok: true };
}

http
  .createServer((req, res) => {
    handle(req, res).then(
      (body) => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify(body));
      },
      (err) => {
        res.writeHead(500, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: err.message }));
      },
    );
  })
  .listen(process.env.PORT || 5000, () => console.log(`listening on ${process.env.PORT}`));
