"""Benchmark: ``services:bind`` until the app serves with the new var, split into broker and rollout.

What is measured: one cycle is ``POST /v2/services/db/bindings`` (the controller binds at
the broker, then records and rolls out a release with DATABASE_URL and friends) followed
by a client polling the app through the nginx router until it answers ``/db`` (a row
written through the new DATABASE_URL). The controller reports how long the broker bind
took and how long the rollout took; "to serving" is from sending the request to the
first good answer. Then the binding is removed (unbind, not measured) and the next cycle
starts. Everything is real: ``moorage broker`` (gunicorn) with the ``postgresql``
offering on Moorage's embedded PostgreSQL, the controller on the LocalRuntime, nginx.

Baseline (same run, same app): ``config:set`` of one plain var until the app serves it —
the zero-downtime rollout every config change costs, without a broker.

Run from the repository root::

    .venv/bin/python -m bench.services_bind [--cycles 5]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import statistics
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from werkzeug.serving import make_server

from bench.common import PASSWORD, ROOT, bench_dir, broker_process, embedded_postgres
from moorage.embedded.ports import free_port
from moorage.platform.api import create_app
from moorage.platform.router import Router
from moorage.platform.runtime.local import LocalRuntime
from moorage.settings import Settings

APP_DIR = ROOT / "tests" / "apps" / "svc_store"
HOST = "bench.moorage.localhost"


def tarball(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return buf.getvalue()


@contextmanager
def controller(data_dir: Path, broker_port: int) -> Iterator[tuple[str, int]]:
    """The controller (LocalRuntime + nginx router) on loopback; yields (URL, router port)."""
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    settings = Settings(data_dir=data_dir).with_group(
        broker={"port": broker_port, "password": PASSWORD},
        platform={"router_port": free_port(), "stop_grace_seconds": 2.0},
    )
    router = Router(settings)
    router.start()
    runtime = LocalRuntime(settings, router)
    server = None
    try:
        app = create_app(settings, runtime, builder="procfile")
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        yield f"http://127.0.0.1:{server.server_port}", settings.platform.router_port
    finally:
        if server is not None:
            server.shutdown()
        runtime.close()
        router.stop()


def check(response: httpx.Response, *ok: int) -> dict:
    if response.status_code not in ok:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:400]}"
        )
    return response.json() if response.content else {}


def wait_until(probe: Callable[[], bool], timeout: float = 60.0) -> float:
    """Poll ``probe`` every 5 ms; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return time.monotonic()
        time.sleep(0.005)
    raise RuntimeError("the app did not serve the new release in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    with bench_dir("moorage-bench-bind-") as base, embedded_postgres(base / "pg") as admin_url:
        extra = {"MOORAGE_SERVICES_POSTGRES_ADMIN_URL": admin_url}
        with broker_process(base / "broker", ROOT / "catalog", extra) as broker:
            port = int(broker.url.rsplit(":", 1)[1])
            with controller(base / "ctl", port) as (url, router_port):
                run(url, router_port, args.cycles)


def run(url: str, router_port: int, cycles: int) -> None:
    api = httpx.Client(base_url=url, timeout=120)
    check(api.post("/v2/auth/register", json={"username": "bench", "password": "bench-password"}), 201)
    token = check(api.post("/v2/auth/login", json={"username": "bench", "password": "bench-password"}), 200)[
        "token"
    ]
    api.headers["Authorization"] = f"token {token}"
    router = httpx.Client(base_url=f"http://127.0.0.1:{router_port}", headers={"Host": HOST}, timeout=10)

    check(api.post("/v2/apps", json={"id": "bench"}), 201)
    check(api.post("/v2/apps/bench/config", json={"values": {"PYTHON": sys.executable}}), 201)
    with api.stream("POST", "/v2/apps/bench/builds", content=tarball(APP_DIR)) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
    if "result" not in lines[-1]:
        raise RuntimeError(f"deploy failed: {lines[-3:]}")
    with api.stream(
        "POST", "/v2/services", json={"service": "postgresql", "plan": "shared-small", "name": "db"}
    ) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
    if "result" not in lines[-1]:
        raise RuntimeError(f"services:create failed: {lines[-3:]}")

    def serves_db() -> bool:
        try:
            return router.get("/db").status_code == 200
        except httpx.HTTPError:
            return False

    def serves(value: str) -> Callable[[], bool]:
        def probe() -> bool:
            try:
                r = router.get("/")
                return r.status_code == 200 and f"DATABASE_BENCH_{value}" in r.json()["vars"]
            except httpx.HTTPError:
                return False

        return probe

    total, broker_s, rollout_s, config_s = [], [], [], []
    for n in range(cycles):
        started = time.monotonic()
        result = check(api.post("/v2/services/db/bindings", json={"app": "bench"}), 201)
        served = wait_until(serves_db)
        total.append(served - started)
        broker_s.append(result["timings"]["broker_seconds"])
        rollout_s.append(result["timings"]["rollout_seconds"])
        check(api.delete("/v2/services/db/bindings/bench"), 200)

        # Baseline: a plain config change, until the app has it (DATABASE_ prefix is served by "/").
        started = time.monotonic()
        check(api.post("/v2/apps/bench/config", json={"values": {f"DATABASE_BENCH_{n}": "1"}}), 201)
        served = wait_until(serves(str(n)))
        config_s.append(served - started)
        print(
            f"cycle {n + 1}: bind→serving {total[-1]:.2f} s (broker {broker_s[-1]:.3f} s, "
            f"rollout {rollout_s[-1]:.2f} s); config:set→serving {config_s[-1]:.2f} s",
            flush=True,
        )

    med = statistics.median
    print(
        json.dumps(
            {
                "cycles": cycles,
                "bind_to_serving_s": round(med(total), 3),
                "broker_s": round(med(broker_s), 3),
                "rollout_s": round(med(rollout_s), 3),
                "config_set_to_serving_s": round(med(config_s), 3),
                "bind_overhead_over_config_set_s": round(med(total) - med(config_s), 3),
            },
            indent=2,
        )
    )
    check(api.delete("/v2/services/db"), 200)
    check(api.delete("/v2/apps/bench"), 204)


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    main()
