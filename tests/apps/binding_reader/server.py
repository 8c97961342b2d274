"""A test app that reports its service bindings as an app sees them.

GET / answers with the binding vars of its environment and every file under
$SERVICE_BINDING_ROOT (read with the app's own uid, as any app would read them).
"""

import http.server
import json
import os

NAMES = ("SERVICE_BINDING_ROOT", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "BIGQUERY_DATASET")


def bindings():
    root = os.environ.get("SERVICE_BINDING_ROOT")
    if not root:
        return {}
    out = {}
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        out[name] = {}
        for key in sorted(os.listdir(folder)):
            with open(os.path.join(folder, key), encoding="utf-8") as fh:
                out[name][key] = fh.read()
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        env = {k: os.environ[k] for k in NAMES if k in os.environ}
        body = json.dumps({"env": env, "files": bindings(), "uid": os.getuid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
