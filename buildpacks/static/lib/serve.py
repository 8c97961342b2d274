"""A small static file server for the static buildpack's slugs.

Why it exists: a static site needs one web process and no dependencies. This serves the
directory it is started in on ``$PORT`` (``$HOST``, default ``0.0.0.0``), answers ``/``
with ``index.html`` and a path that names nothing with ``404.html`` when the site has one.
It never serves dotfiles or dot-folders (``.env``, ``.git``, ``.profile.d``, ``.release``),
however the path is spelled (``/%2eenv`` too), nor the ``Procfile``, and never lists a
folder: a listing would show names the site did not publish.
"""

from __future__ import annotations

import functools
import http.server
import os
import sys
import urllib.parse

HIDDEN = {"Procfile", ".slugignore"}
NOT_FOUND_PAGE = "404.html"


class Handler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):  # type: ignore[no-untyped-def]
        raw = self.path.split("?", 1)[0].split("#", 1)[0]
        parts = [p for p in urllib.parse.unquote(raw).replace("\\", "/").split("/") if p]
        if any(p.startswith(".") or p in HIDDEN for p in parts):
            return self.not_found()
        path = self.translate_path(self.path)
        if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "index.html")):
            return self.not_found()
        if not os.path.exists(path):
            return self.not_found()
        return super().send_head()

    def not_found(self):  # type: ignore[no-untyped-def]
        """404, with the site's own 404.html as the body when it has one."""
        page = os.path.join(self.directory, NOT_FOUND_PAGE)
        if not os.path.isfile(page):
            self.send_error(404, "Not found")
            return None
        f = open(page, "rb")  # noqa: SIM115 - closed by copyfile's caller, as in send_head
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
        self.end_headers()
        return f

    def list_directory(self, path):  # type: ignore[no-untyped-def]
        return self.not_found()

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
