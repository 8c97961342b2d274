"""Benchmark: the router vs straight to one web process, and requests lost to endpoint changes.

Why: issue 3's target is at least 0.8 of direct throughput and under 1 ms added p50;
issue 12's is no request lost while an app's processes change. Run as
``.venv/bin/python -m bench.router`` from the repository root. It deploys
``tests/apps/rt_echo`` (web=1) on the local runtime behind its own nginx, then, in the
same run, drives a bounded number of keep-alive requests from Python threads at the
router (with the app's Host header), at its TLS port (keep-alive HTTPS with SNI), at a
plain nginx with the web process as its one static upstream and no Lua (what the router
costs beyond any proxy) and at the web process's port directly. Then it scales the app
between web=2 and web=3 ``BENCH_CHANGES`` times (100) while client threads with
keep-alive connections send requests, and counts the failed ones.
Both sides are CPU-bound on the same machine, so the figures compare, not promise.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common_platform import local_runtime
from moorage.embedded.ports import free_port
from moorage.platform.router import Router
from moorage.platform.router.nginx import NGINX
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.local import LocalRuntime

APP = Path(__file__).resolve().parent.parent / "tests" / "apps" / "rt_echo"
THREADS = 4
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1500"))  # per thread and target
CHANGES = int(os.environ.get("BENCH_CHANGES", "100"))
HOST = "bench.moorage.localhost"


def connection(port: int, ca: str | None) -> http.client.HTTPConnection:
    """A keep-alive connection to 127.0.0.1:``port``; with ``ca``, HTTPS to HOST (SNI) verified by it."""
    if ca is None:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(HOST, port, context=context, timeout=10)
    conn._create_connection = lambda address, *args: socket.create_connection(  # type: ignore[attr-defined]
        ("127.0.0.1", address[1]), *args
    )
    return conn


def drive(port: int, ca: str | None = None) -> tuple[float, list[float], int]:
    """(requests/s, latencies in seconds, failures) for THREADS × REQUESTS requests."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal failures
        mine: list[float] = []
        bad = 0
        conn = connection(port, ca)
        for _ in range(REQUESTS):
            started = time.perf_counter()
            try:
                conn.request("GET", "/", headers={"Host": HOST})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = connection(port, ca)
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)
            failures += bad

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, failures


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


STATIC_NGINX = """\
worker_processes 2; daemon off; pid {root}/nginx.pid; error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
  keepalive_requests 100000; proxy_http_version 1.1; proxy_set_header Connection "";
  proxy_set_header Host $http_host; proxy_buffering off;
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme;
  proxy_set_header X-Forwarded-Port $server_port; proxy_set_header X-Request-Id $request_id;
  add_header X-Request-Id $request_id always;
  upstream app {{ server 127.0.0.1:{backend}; keepalive 256; keepalive_requests 100000; }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app; }} }}
}}
"""


@contextmanager
def static_nginx(backend: int) -> Iterator[int]:
    """A plain nginx with the app as its one static upstream: the router's baseline.

    The same headers reach the app (so it does the same work), but there is no Lua, no
    host lookup and no access log.
    """
    root = Path(tempfile.mkdtemp(prefix="moorage-bench-nginx-"))
    port = free_port()
    (root / "nginx.conf").write_text(STATIC_NGINX.format(root=root, backend=backend, port=port))
    proc = subprocess.Popen(
        [NGINX, "-p", f"{root}/", "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    log = (root / "error.log").read_text()
                    raise RuntimeError(f"the static nginx did not start: {log}") from None
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def throughput(runtime: LocalRuntime, router: Router) -> None:
    [web] = runtime.status("bench")
    assert web.port is not None
    with static_nginx(web.port) as plain:
        _compare(web.port, plain, router)


def _compare(direct_port: int, plain: int, router: Router) -> None:
    ca = str(router.root / "tls" / "default.crt")
    drive(direct_port)  # warm up every path
    drive(plain)
    drive(router.port)
    drive(router.https_port, ca)
    results = {}
    for name, port, tls in (
        ("direct", direct_port, None),
        ("nginx", plain, None),
        ("router", router.port, None),
        ("tls", router.https_port, ca),
    ) * 2:
        rps, lat, bad = drive(port, tls)
        previous = results.get(name)
        if previous is None or rps > previous[0]:
            results[name] = (rps, lat, bad)
    for name, (rps, lat, bad) in results.items():
        print(
            f"{name:6}: {rps:8.0f} req/s  p50 {statistics.median(lat) * 1000:6.2f} ms  "
            f"p99 {pct(lat, 0.99) * 1000:6.2f} ms  failures {bad}  ({len(lat)} requests)"
        )
    direct = results["direct"]
    for name in ("nginx", "router", "tls"):
        routed = results[name]
        added = (statistics.median(routed[1]) - statistics.median(direct[1])) * 1000
        print(f"{name}/direct throughput: {routed[0] / direct[0]:.2f}; added p50 latency: {added:.2f} ms")
    print(f"router/static nginx throughput: {results['router'][0] / results['nginx'][0]:.2f}")


def endpoint_changes(runtime: LocalRuntime, router: Router) -> None:
    """Scale web=2 <-> web=3 CHANGES times under keep-alive load; count failed requests."""
    runtime.scale("bench", {"web": 2}, lambda _: None)
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
        while not stop.is_set():
            try:
                conn.request("GET", "/", headers={"Host": HOST})
                response = conn.getresponse()
                response.read()
                good = response.status == 200
                what = f"status {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                good, what = False, repr(exc)
                conn.close()
            with lock:
                counts["ok" if good else "failed"] += 1
                if not good and len(errors) < 5:
                    errors.append(what)
            time.sleep(0.002)  # a steady load, not a saturating one
        conn.close()

    master = router.master_pid
    threads = [threading.Thread(target=client) for _ in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    try:
        for change in range(CHANGES):
            runtime.scale("bench", {"web": 3 if change % 2 == 0 else 2}, lambda _: None)
    finally:
        stop.set()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - started
    total = counts["ok"] + counts["failed"]
    print(
        f"endpoint changes: {CHANGES} scales in {elapsed:.1f} s, {total} keep-alive requests, "
        f"{counts['failed']} failed {errors}; nginx master unchanged: {router.master_pid == master}"
    )


def main() -> None:
    with local_runtime("moorage-bench-", router_https_port=free_port()) as (router, runtime):
        release = ReleaseSpec("bench", 1, str(APP), {}, {"web": "python3 app.py --port $PORT"})
        runtime.deploy(release, {"web": 1}, lambda _: None)
        throughput(runtime, router)
        endpoint_changes(runtime, router)


if __name__ == "__main__":
    main()
