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
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import google.auth
from google.auth.transport.requests import Request
from google.cloud import bigquery
from google.oauth2 import service_account
from googleapiclient import discovery

from moorage.catalog.loader import load_offering
from moorage.catalog.provider import BindingContext, InstanceContext
from moorage.providers.gcp_bigquery import BigQueryProvider
from moorage.settings import Settings
from tests.fixtures.gcp import PROJECT, gcp_group, start_emulator, stop_emulator
from tests.gcp.iam_standin import IamStandIn

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def direct(bq_url: str, iam_url: str) -> Callable[[], None]:
    credentials, _ = google.auth.default(scopes=SCOPES)
    bq = bigquery.Client(PROJECT, credentials=credentials, client_options={"api_endpoint": bq_url})
    iam = discovery.build(
        "iam", "v1", credentials=credentials, client_options={"api_endpoint": iam_url},
        cache_discovery=False, static_discovery=True,
    )
    accounts = iam.projects().serviceAccounts()

    def lifecycle() -> None:
        name, account = f"direct_{uuid.uuid4().hex}", f"direct-{uuid.uuid4().hex[:20]}"
        dataset = bigquery.Dataset(bigquery.DatasetReference(PROJECT, name))
        dataset.location, dataset.description, dataset.labels = "US", "bench", {"instance": name}
        bq.create_dataset(dataset)
        sa = accounts.create(name=f"projects/{PROJECT}", body={"accountId": account, "serviceAccount": {}}).execute()
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


def providers(settings: Settings) -> Callable[[], None]:
    provider = BigQueryProvider(settings)
    offering = load_offering(ROOT / "catalog" / "gcp-bigquery.yaml")
    plan = offering.plan_named("standard")
    assert plan is not None

    def lifecycle() -> None:
        ctx = InstanceContext(str(uuid.uuid4()), offering, plan, {}, {}, settings)
        ctx = InstanceContext(ctx.instance_id, offering, plan, {}, dict(provider.provision(ctx).outputs), settings)
        binding = BindingContext(str(uuid.uuid4()), ctx, {}, {})
        result = provider.bind(binding)
        provider.unbind(BindingContext(binding.binding_id, ctx, {}, result.outputs))
        provider.deprovision(ctx)

    return lifecycle


def broker(settings: Settings, data_dir: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    from tests.fixtures.broker import broker_settings, new_id, start_broker

    catalog = data_dir / "catalog"
    catalog.mkdir()
    (catalog / "gcp-bigquery.yaml").write_text((ROOT / "catalog" / "gcp-bigquery.yaml").read_text())
    group = settings.gcp
    running = start_broker(broker_settings(data_dir / "broker", [catalog], gcp=group.__dict__))
    osb = running.client
    service_id, plan_id = osb.ids("gcp-bigquery", "standard")

    def ok(response, instance_id: str, binding_id: str | None = None) -> None:  # type: ignore[no-untyped-def]
        if response.status_code == 202:
            state = osb.wait(instance_id, binding_id, response.json().get("operation"), timeout=60).json()
            assert state["state"] == "succeeded", state
        else:
            assert response.status_code in (200, 201), response.text

    def lifecycle() -> None:
        instance_id, binding_id = new_id(), new_id()
        ok(osb.provision(instance_id, service_id, plan_id, {}), instance_id)
        ok(osb.bind(instance_id, binding_id, service_id, plan_id, {}), instance_id, binding_id)
        ok(osb.unbind(instance_id, binding_id, service_id, plan_id), instance_id, binding_id)
        ok(osb.deprovision(instance_id, service_id, plan_id), instance_id)

    return lifecycle, running.stop


def measure(ways: dict[str, Callable[[], None]]) -> dict[str, list[float]]:
    """Rounds taken in turn (direct, providers, broker, direct, …), so the emulator's own
    drift over the run (DuckDB warming up, a loaded machine) weighs on every way alike."""
    for lifecycle in ways.values():
        lifecycle()  # warm-up: clients, discovery documents, connections
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(ROUNDS):
        for name, lifecycle in ways.items():
            start = time.perf_counter()
            lifecycle()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    with tempfile.TemporaryDirectory(prefix="moorage-bench-gcp-") as tmp:
        emulator, proc = start_emulator(Path(tmp) / "bigquery")
        standin = IamStandIn(PROJECT)
        key_file = Path(tmp) / "admin.json"
        key_file.write_text(json.dumps(standin.bootstrap_admin()))
        saved = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(key_file)
        settings = Settings(data_dir=Path(tmp), gcp=gcp_group(emulator.url, standin.url))
        stop_broker = None
        try:
            via_broker, stop_broker = broker(settings, Path(tmp))
            results = measure(
                {"direct": direct(emulator.url, standin.url), "providers": providers(settings), "broker": via_broker}
            )
        finally:
            if stop_broker is not None:
                stop_broker()
            standin.close()
            stop_emulator(proc)
            if saved is None:
                os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
            else:
                os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = saved
    base = statistics.median(results["direct"])
    print(f"gcp-bigquery provision+bind+unbind+deprovision, {ROUNDS} rounds (local-bigquery + IAM stand-in)")
    for name, times in results.items():
        median = statistics.median(times)
        p90 = sorted(times)[int(len(times) * 0.9) - 1]
        print(f"  {name:<10} median {median * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   ratio {median / base:4.2f}")
    worst = max(statistics.median(t) for t in results.values()) / base
    print(f"target ratio <= 1.5: {'met' if worst <= 1.5 else 'NOT met'} (worst {worst:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
