import sys

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return f"poetry app on python {sys.version_info[0]}.{sys.version_info[1]}\n"
