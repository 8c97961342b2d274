import sys


def app(environ, start_response):
    body = f"uv app on python {sys.version_info[0]}.{sys.version_info[1]}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
