"""An app that uses BigQuery the way public apps do: google-cloud-bigquery with the
project and key file found through GOOGLE_CLOUD_PROJECT and GOOGLE_APPLICATION_CREDENTIALS
(Application Default Credentials), and its dataset in BIGQUERY_DATASET.

GET /orders?n=N makes the table ``orders`` when missing, inserts a row and answers with
every row, read back by a query job. Any failure (no credentials, a refused key) is a
503 carrying the library's message.
"""

import http.server
import json
import os
from urllib.parse import parse_qs, urlparse

from google.cloud import bigquery

SCHEMA = [bigquery.SchemaField("n", "INTEGER"), bigquery.SchemaField("item", "STRING")]


def orders(n):
    client = bigquery.Client()  # project and credentials from the environment
    table_id = f"{client.project}.{os.environ['BIGQUERY_DATASET']}.orders"
    table = client.create_table(bigquery.Table(table_id, schema=SCHEMA), exists_ok=True)
    errors = client.insert_rows_json(table, [{"n": n, "item": f"item-{n}"}])
    if errors:
        raise RuntimeError(f"insert failed: {errors}")
    rows = client.query(f"SELECT n, item FROM `{table_id}` ORDER BY n").result()
    return [{"n": row["n"], "item": row["item"]} for row in rows]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        url = urlparse(self.path)
        if url.path != "/orders":
            return self.reply(200, {"project": os.environ.get("GOOGLE_CLOUD_PROJECT")})
        n = int(parse_qs(url.query).get("n", ["1"])[0])
        try:
            return self.reply(200, {"rows": orders(n)})
        except Exception as exc:  # the app's user sees why
            return self.reply(503, {"error": f"{type(exc).__name__}: {exc}"})

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("request", self.path, flush=True)


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
