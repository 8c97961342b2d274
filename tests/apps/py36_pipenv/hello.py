# An app of the Python 3.6 era: gunicorn 19, f-strings were new.
import sys

import gunicorn


def app(environ, start_response):
    version = ".".join(str(n) for n in sys.version_info[:3])
    body = f"python {version}, gunicorn {gunicorn.__version__}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
