"""A Flask app for the builder tests: answers with the Python it runs on."""

import sys

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return f"hello from flask on {sys.version_info[0]}.{sys.version_info[1]}\n"
