"""A small static file server for the static buildpack's slugs.

Why it exists: a static site needs one web process and no dependencies. This serves the
directory it is started in on ``$PORT`` (``$HOST``, default ``0.0.0.0``), answers ``/``
with ``index.html``, and never serves dotfiles (``.profile.d``, ``.static``, ``.release``)
or the ``Procfile``.
"""

from __future__ import annotations

import functools
import http.server
import os
import sys

HIDDEN = {"Procfile", ".slugignore"}


class Handler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):  # type: ignore[no-untyped-def]
        parts = [p for p in self.path.split("?", 1)[0].split("#", 1)[0].split("/") if p]
        if any(p.startswith(".") or p in HIDDEN for p in parts):
            self.send_error(404, "Not found")
            return None
        return super().send_head()

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"{self.address_string()} {format % args}\n")
        sys.stdout.flush()


def main() -> None:
    port = int(os.environ.get("PORT", "5000"))
    host = os.environ.get("HOST", "0.0.0.0")
    handler = functools.partial(Handler, directory=os.getcwd())
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        print(f"serving {os.getcwd()} on {host}:{port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
