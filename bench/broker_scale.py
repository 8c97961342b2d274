"""Benchmark: broker memory and read latency with 100 vs 10,000 service instances.

What is measured, on ``moorage broker`` under gunicorn (default settings: one worker
process, SQLite state in its data dir) serving the no-op offering of
``tests/catalog`` (no backend, so the figures are the broker's own):

- resident memory: VmRSS summed over the gunicorn master and its workers (/proc), when
  idle (started, no instances), with 100 instances and with 10,000 instances;
- p50/p99 of ``GET /v2/service_instances/<id>`` (fetch) and of ``GET …/last_operation``,
  sequential keep-alive requests for ids drawn at random from all instances.

How the instances are made: the first 100 through the OSB API (``PUT``, plan ``sync``).
The other 9,900 are written straight into the state database through the store's
tables, as copies of an API-made instance row and its ``succeeded`` provision operation
with new ids (the API would take minutes for them and adds nothing to what is measured:
the rows are the same shape the API writes).

Baseline: the same requests against the same server at 100 instances, in the same run.
Target: latency at 10,000 instances within 2x of that at 100. Run from the repository
root::

    .venv/bin/python -m bench.broker_scale [--requests 1000]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

from bench.common import ROOT, Broker, bench_dir, broker_process, expect, latencies, summary, tree_rss
from moorage.store.db import Database
from moorage.store.models import Operation, ServiceInstance

CATALOG = ROOT / "tests" / "catalog"
SERVICE_ID = "731892d1-fd21-499c-b512-700542df581f"  # noop
PLAN_ID = "89d9641a-a572-45ac-8c81-6a0397f18129"  # sync
SMALL, LARGE = 100, 10_000
TARGET = 2.0
BATCH = 1000


def provision(http: httpx.Client, count: int) -> list[str]:
    """``count`` instances through the OSB API; their ids."""
    body = {"service_id": SERVICE_ID, "plan_id": PLAN_ID, "organization_guid": "org", "space_guid": "space"}
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for instance_id in ids:
        expect(http.put(f"/v2/service_instances/{instance_id}", json=body), 201)
    return ids


def copy_instances(state_url: str, template_id: str, count: int) -> list[str]:
    """``count`` copies of an API-made instance and its operations, written in batches."""
    db = Database(state_url)
    try:
        with db.sessions() as session:
            instance = _row(session.get(ServiceInstance, template_id))
            ops = [
                _row(op)
                for op in session.scalars(select(Operation).where(Operation.instance_id == template_id))
            ]
        ids = [str(uuid.uuid4()) for _ in range(count)]
        for start in range(0, count, BATCH):
            chunk = ids[start : start + BATCH]
            with db.unit_of_work() as session:
                session.execute(insert(ServiceInstance), [{**instance, "id": i} for i in chunk])
                session.execute(
                    insert(Operation),
                    [{**op, "id": uuid.uuid4().hex, "instance_id": i} for i in chunk for op in ops],
                )
        return ids
    finally:
        db.dispose()


def _row(obj: Any) -> dict[str, Any]:
    """The column values of a mapped object, by attribute name."""
    mapper = obj.__mapper__
    return {attr.key: getattr(obj, attr.key) for attr in mapper.column_attrs}


def read_latencies(http: httpx.Client, ids: list[str], count: int) -> dict[str, list[float]]:
    """Samples of fetch and last_operation for random ``ids``, alternating in blocks of 50."""
    rng = random.Random(4)
    samples: dict[str, list[float]] = {"fetch": [], "last_operation": []}
    paths = {"fetch": "/v2/service_instances/{}", "last_operation": "/v2/service_instances/{}/last_operation"}
    for _ in range(max(1, count // 50)):
        for name, path in paths.items():
            samples[name] += latencies(lambda p=path: expect(http.get(p.format(rng.choice(ids))), 200), 50)
    return samples


def rss_mib(broker: Broker) -> tuple[float, int]:
    kib, processes = tree_rss(broker.pid)
    return kib / 1024, processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests of each kind at each size")
    args = parser.parse_args()
    with bench_dir("moorage-bench-scale-") as base:
        with broker_process(base / "state", CATALOG) as broker, broker.client() as http:
            results = run(broker, http, base / "state", args.requests)
    report(results)


def run(broker: Broker, http: httpx.Client, data_dir: Path, requests: int) -> dict[str, Any]:
    results: dict[str, Any] = {"rss": {}}
    time.sleep(1)  # let gunicorn finish booting its worker before the idle reading
    results["rss"]["idle"] = rss_mib(broker)
    ids = provision(http, SMALL)
    read_latencies(http, ids, 200)  # warm-up
    results[SMALL] = read_latencies(http, ids, requests)
    results["rss"][SMALL] = rss_mib(broker)
    start = time.perf_counter()
    ids += copy_instances(f"sqlite:///{data_dir / 'moorage.db'}", ids[0], LARGE - SMALL)
    results["copy_seconds"] = time.perf_counter() - start
    read_latencies(http, ids, 200)  # warm-up
    results[LARGE] = read_latencies(http, ids, requests)
    results["rss"][LARGE] = rss_mib(broker)
    return results


def report(results: dict[str, Any]) -> None:
    print(f"{LARGE - SMALL} instances copied into the state database in {results['copy_seconds']:.1f} s")
    print("resident memory of the broker (gunicorn master + workers):")
    for label, (mib, processes) in results["rss"].items():
        name = "idle" if label == "idle" else f"{label} instances"
        print(f"  {name:16s} {mib:6.1f} MiB ({processes} processes)")
    worst = 0.0
    for kind in ("fetch", "last_operation"):
        small, large = summary(results[SMALL][kind]), summary(results[LARGE][kind])
        p50_ratio, p99_ratio = large["p50_ms"] / small["p50_ms"], large["p99_ms"] / small["p99_ms"]
        worst = max(worst, p50_ratio, p99_ratio)
        print(
            f"{kind:15s} at {SMALL}: p50 {small['p50_ms']:5.2f} ms p99 {small['p99_ms']:5.2f} ms | "
            f"at {LARGE}: p50 {large['p50_ms']:5.2f} ms p99 {large['p99_ms']:5.2f} ms | "
            f"ratio p50 {p50_ratio:.2f}x p99 {p99_ratio:.2f}x"
        )
    verdict = "meets" if worst <= TARGET else "MISSES"
    print(f"worst ratio {worst:.2f}x: {verdict} the target of within {TARGET:.0f}x")


if __name__ == "__main__":
    main()
