"""A test app that uses its bound services: a row through DATABASE_URL, a counter through REDIS_URL.

GET /            which service vars it has (names only) and its release
GET /db?var=X    insert a row through the URL in config var X (default DATABASE_URL); the row count
GET /counter     INCR a counter under REDIS_KEY_PREFIX through REDIS_URL; the new value
Errors answer 500 with the reason, so a test sees which credentials failed.
"""

import http.server
import json
import os
import urllib.parse

import psycopg
import redis

PREFIXES = ("DATABASE", "REDIS", "ANALYTICS", "VCAP_SERVICES")


def use_database(var):
    with psycopg.connect(os.environ[var], connect_timeout=5) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, release text)")
        conn.execute("INSERT INTO visits (release) VALUES (%s)", (os.environ.get("MOORAGE_RELEASE"),))
        (count,) = conn.execute("SELECT count(*) FROM visits").fetchone()
        user = conn.info.user
    return {"rows": count, "user": user}


def use_redis():
    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)
    try:
        value = client.incr(f"{os.environ['REDIS_KEY_PREFIX']}:counter")
    finally:
        client.close()
    return {"counter": value}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            if url.path == "/db":
                data = use_database(query.get("var", "DATABASE_URL"))
            elif url.path == "/counter":
                data = use_redis()
            else:
                data = {
                    "vars": sorted(k for k in os.environ if k.startswith(PREFIXES)),
                    "release": os.environ.get("MOORAGE_RELEASE"),
                }
            status = 200
        except Exception as exc:  # the test wants to see why
            data, status = {"error": f"{type(exc).__name__}: {exc}"}, 500
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


print("svc_store listening on", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
