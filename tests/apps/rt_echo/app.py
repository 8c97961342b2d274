"""A tiny web app for runtime tests: reports its pid, port, uid, limits, one env var and headers."""

import argparse
import json
import os
import resource
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    # Headers and body in one write, as most app servers send a small answer: a process
    # killed between requests then never leaves a client with headers and no body.
    wbufsize = 1 << 16

    def do_GET(self):
        if self.path == "/crash":
            print("crashing on request", flush=True)
            os._exit(3)
        body = json.dumps(
            {
                "pid": os.getpid(),
                "port": self.server.server_address[1],
                "env_port": os.environ.get("PORT", ""),
                "uid": os.getuid(),
                "greeting": os.environ.get("GREETING", ""),
                "profile": os.environ.get("FROM_PROFILE", ""),
                "release": os.environ.get("MOORAGE_RELEASE", ""),
                "dyno": os.environ.get("DYNO", ""),
                "cwd": os.getcwd(),
                "limits": {
                    "data": resource.getrlimit(resource.RLIMIT_DATA)[0],
                    "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                    "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
                },
                "headers": {k.lower(): v for k, v in self.headers.items()},
                # Every header line as sent, so a header the router sent twice shows twice.
                "header_lines": [[k.lower(), v] for k, v in self.headers.items()],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        print("request", self.path, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if os.environ.get("CRASH_ON_BOOT"):
        print("boom: refusing to start", file=sys.stderr, flush=True)
        sys.exit(7)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {args.port} as uid {os.getuid()}", flush=True)
    server.serve_forever()
