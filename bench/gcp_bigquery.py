"""Benchmark: a gcp-bigquery lifecycle through Moorage vs the same library calls made directly.

Why: issue 15's target is that provision + bind + unbind + deprovision of gcp-bigquery
through the broker costs at most 1.5 times the bare Google calls. Run as
``.venv/bin/python -m bench.gcp_bigquery`` from the repository root. It starts the
local-bigquery emulator and the IAM stand-in (the test fixtures' code), then, in the same
run and against the same servers, times N lifecycles three ways, taking turns:

* **direct**: the calls a careful script would make with the same libraries
  (google-cloud-bigquery, google-api-python-client's IAM): create the dataset; create the
  service account and a key, add the access entry (read, write with the etag), exchange
  the key for a token once; then remove the entry, delete the key, the account, the dataset;
* **providers**: ``BigQueryProvider`` called in-process (adds look-ups and checks);
* **broker**: the OSB API over HTTP with the worker and the SQLite state database.

Both servers answer in milliseconds (the stand-in's RSA key generation is the biggest
single cost), so the ratio is an upper bound: against Google the fixed overhead weighs less.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path

import google.auth
from google.auth.transport.requests import Request
from google.cloud import bigquery
from google.oauth2 import service_account
from googleapiclient import discovery

from bench import common_cloud as cloud
from moorage.providers.gcp_bigquery import BigQueryProvider
from moorage.settings import Settings
from tests.fixtures.gcp import PROJECT, gcp_group, start_emulator, stop_emulator
from tests.gcp.iam_standin import IamStandIn

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def direct(bq_url: str, iam_url: str) -> cloud.Lifecycle:
    credentials, _ = google.auth.default(scopes=SCOPES)
    bq = bigquery.Client(PROJECT, credentials=credentials, client_options={"api_endpoint": bq_url})
    iam = discovery.build(
        "iam",
        "v1",
        credentials=credentials,
        client_options={"api_endpoint": iam_url},
        cache_discovery=False,
        static_discovery=True,
    )
    accounts = iam.projects().serviceAccounts()

    def lifecycle() -> None:
        name, account = f"direct_{uuid.uuid4().hex}", f"direct-{uuid.uuid4().hex[:20]}"
        dataset = bigquery.Dataset(bigquery.DatasetReference(PROJECT, name))
        dataset.location, dataset.description, dataset.labels = "US", "bench", {"instance": name}
        bq.create_dataset(dataset)
        sa = accounts.create(
            name=f"projects/{PROJECT}", body={"accountId": account, "serviceAccount": {}}
        ).execute()
        email, resource = sa["email"], f"projects/{PROJECT}/serviceAccounts/{sa['email']}"
        key = accounts.keys().create(name=resource, body={}).execute()
        ds = bq.get_dataset(name)
        ds.access_entries = [*ds.access_entries, bigquery.AccessEntry("WRITER", "userByEmail", email)]
        bq.update_dataset(ds, ["access_entries"])
        info = json.loads(base64.b64decode(key["privateKeyData"]))
        service_account.Credentials.from_service_account_info(info, scopes=SCOPES).refresh(Request())
        ds = bq.get_dataset(name)
        ds.access_entries = [e for e in ds.access_entries if e.entity_id != email]
        bq.update_dataset(ds, ["access_entries"])
        accounts.keys().delete(name=key["name"]).execute()
        accounts.delete(name=resource).execute()
        bq.delete_dataset(name)

    return lifecycle


def measure(settings: Settings, data_dir: Path, bq_url: str, iam_url: str) -> dict[str, list[float]]:
    """The three ways, taking turns (``cloud.lifecycle_times``)."""
    via_broker, stop_broker = cloud.broker_lifecycle(data_dir, "gcp-bigquery", gcp=settings.gcp.__dict__)
    try:
        ways = {
            "direct": direct(bq_url, iam_url),
            "providers": cloud.provider_lifecycle(BigQueryProvider(settings), "gcp-bigquery", settings),
            "broker": via_broker,
        }
        return cloud.lifecycle_times(ways, ROUNDS)
    finally:
        stop_broker()


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    with tempfile.TemporaryDirectory(prefix="moorage-bench-gcp-") as tmp:
        emulator, proc = start_emulator(Path(tmp) / "bigquery")
        standin = IamStandIn(PROJECT)
        key_file = Path(tmp) / "admin.json"
        key_file.write_text(json.dumps(standin.bootstrap_admin()))
        with cloud.environ(GOOGLE_APPLICATION_CREDENTIALS=str(key_file)):
            settings = Settings(data_dir=Path(tmp), gcp=gcp_group(emulator.url, standin.url))
            try:
                results = measure(settings, Path(tmp), emulator.url, standin.url)
            finally:
                standin.close()
                stop_emulator(proc)
    cloud.report_lifecycles(
        f"gcp-bigquery provision+bind+unbind+deprovision, {ROUNDS} rounds (local-bigquery + IAM stand-in)",
        results,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
