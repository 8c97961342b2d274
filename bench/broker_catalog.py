"""Benchmark: GET /v2/catalog latency with a large catalog (100 offerings x 10 plans).

What is measured: p50/p99 of sequential ``GET /v2/catalog`` requests (basic auth,
``X-Broker-API-Version``, keep-alive) to ``moorage broker`` under gunicorn, its catalog a
generated temp folder of 100 offerings of the no-op provider, each with 10 plans, each
plan with JSON-Schema parameter schemas for provision, update and bind (so the answer
is a realistic, large document).

Baseline: ``GET /healthz`` on the same server in the same run (interleaved in blocks):
the cost of the HTTP round trip, gunicorn and Flask with no work, so the ratio is what
the catalog itself costs. Target: catalog p99 under 5 ms. Run from the repository root::

    .venv/bin/python -m bench.broker_catalog [--requests 2000]
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import bench_dir, broker_process, expect, latencies, summary

OFFERINGS = 100
PLANS = 10
TARGET_P99_MS = 5.0
BLOCK = 50  # requests per block; catalog and healthz blocks alternate


def parameters_schema(index: int) -> dict[str, Any]:
    """A typical plan schema: a few typed, documented, bounded properties."""
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 100 + index, "description": "Size in GB"},
            "region": {"type": "string", "enum": ["eu", "us", "ap"], "description": "Where it runs"},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "Labels to apply"},
            "ha": {"type": "boolean", "default": False, "description": "Run a standby"},
        },
    }


def plan(offering: int, index: int) -> dict[str, Any]:
    schema = parameters_schema(index)
    return {
        "id": str(uuid.uuid4()),
        "name": f"plan-{index}",
        "description": f"Plan {index} of offering {offering}, for the catalog benchmark.",
        "free": index % 2 == 0,
        "maintenance_info": {"version": "1.0.0", "description": "The first version"},
        "metadata": {"displayName": f"Plan {index}", "bullets": ["one", "two"]},
        "schemas": {
            "service_instance": {"create": {"parameters": schema}, "update": {"parameters": schema}},
            "service_binding": {"create": {"parameters": schema}},
        },
    }


def offering(index: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": f"bench-{index:03d}",
        "description": f"Generated offering {index} of the no-op provider.",
        "provider": "noop",
        "bindable": True,
        "plan_updateable": True,
        "tags": ["bench", f"group-{index % 7}"],
        "metadata": {"displayName": f"Bench {index}", "providerDisplayName": "Moorage"},
        "plans": [plan(index, p) for p in range(PLANS)],
    }


def write_catalog(folder: Path) -> int:
    """Write the offering files; the total size in bytes."""
    folder.mkdir()
    size = 0
    for index in range(OFFERINGS):
        text = yaml.safe_dump(offering(index), sort_keys=False)
        (folder / f"bench-{index:03d}.yaml").write_text(text)
        size += len(text)
    return size


def measure(http: httpx.Client, total: int, budget: float) -> tuple[list[float], list[float]]:
    """Latency samples of catalog and healthz, up to ``total`` each, in alternating blocks.

    Stops early after ``budget`` seconds (a slow catalog must not make the run endless).
    """
    catalog: list[float] = []
    health: list[float] = []
    deadline = time.monotonic() + budget
    block = min(BLOCK, total)
    while len(catalog) < total and time.monotonic() < deadline:
        catalog += latencies(lambda: expect(http.get("/v2/catalog"), 200), block)
        health += latencies(lambda: expect(http.get("/healthz"), 200), block)
    return catalog, health


def check_answer(http: httpx.Client) -> int:
    """The catalog answer has every offering and plan; its size in bytes."""
    resp = expect(http.get("/v2/catalog"), 200)
    services = resp.json()["services"]
    plans = sum(len(s["plans"]) for s in services)
    if len(services) != OFFERINGS or plans != OFFERINGS * PLANS:
        raise RuntimeError(f"catalog has {len(services)} offerings and {plans} plans")
    return len(resp.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests to each endpoint")
    parser.add_argument("--budget", type=float, default=60, help="stop measuring after this many seconds")
    args = parser.parse_args()
    with bench_dir("moorage-bench-catalog-") as base:
        yaml_bytes = write_catalog(base / "catalog")
        with broker_process(base / "state", base / "catalog") as broker, broker.client() as http:
            answer_bytes = check_answer(http)
            measure(http, 20, args.budget)  # warm-up
            catalog, health = measure(http, args.requests, args.budget)
    report(catalog, health, yaml_bytes, answer_bytes)


def report(catalog: list[float], health: list[float], yaml_bytes: int, answer_bytes: int) -> None:
    cat, base = summary(catalog), summary(health)
    print(
        f"catalog: {OFFERINGS} offerings x {PLANS} plans ({yaml_bytes / 1024:.0f} KiB of YAML, "
        f"answer {answer_bytes / 1024:.0f} KiB of JSON), {len(catalog)} requests each"
    )
    print(
        f"  GET /v2/catalog  p50 {cat['p50_ms']:6.2f} ms  p99 {cat['p99_ms']:6.2f} ms  mean {cat['mean_ms']:6.2f} ms"
    )
    print(
        f"  GET /healthz     p50 {base['p50_ms']:6.2f} ms  p99 {base['p99_ms']:6.2f} ms  mean {base['mean_ms']:6.2f} ms"
    )
    print(
        f"  ratio catalog/healthz: p50 {cat['p50_ms'] / base['p50_ms']:.1f}x, p99 {cat['p99_ms'] / base['p99_ms']:.1f}x"
    )
    verdict = "meets" if cat["p99_ms"] < TARGET_P99_MS else "MISSES"
    print(f"  catalog p99 {cat['p99_ms']:.2f} ms: {verdict} the target of under {TARGET_P99_MS:.0f} ms")


if __name__ == "__main__":
    main()
