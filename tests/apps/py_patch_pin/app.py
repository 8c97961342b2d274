"""A WSGI app that says which Python serves it (pinned by runtime.txt to 3.11.3)."""

import sys


def app(environ, start_response):
    body = f"python {sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
