"""Benchmark: scale web=1 → web=4, and config change → new release serving.

Why: issue 3 asks how fast the local runtime rolls. Run as
``.venv/bin/python -m bench.scale`` from the repository root; it starts its own nginx
router and app processes in a temporary data dir and prints the figures.

- boot: one web process of ``tests/apps/rt_echo`` from spawn to passing the health check;
- scale: ``scale web=1 → web=4`` until all four are up and routed, and that minus boot;
- config: ``deploy`` of a release with a changed config var until the router serves
  the new value (measured by a client polling the router during the deploy).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from pathlib import Path

from bench.common_platform import local_runtime
from moorage.embedded.ports import free_port
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.health import probe

APP = Path(__file__).resolve().parent.parent / "tests" / "apps" / "rt_echo"
WEB = "python3 app.py --port $PORT"
ROUNDS = 5


def spec(version: int, greeting: str) -> ReleaseSpec:
    return ReleaseSpec("bench", version, str(APP), {"GREETING": greeting}, {"web": WEB})


def boot_seconds() -> float:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(["python3", "app.py", "--port", str(port)], cwd=APP, stdout=subprocess.DEVNULL)
    try:
        while not probe(port):
            time.sleep(0.005)
        return time.monotonic() - started
    finally:
        process.kill()
        process.wait()


def greeting(port: int) -> str | None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "bench.moorage.localhost"})
        response = conn.getresponse()
        body = response.read()
        return json.loads(body)["greeting"] if response.status == 200 else None
    except (OSError, ValueError):
        return None
    finally:
        conn.close()


def main() -> None:
    with local_runtime("moorage-bench-") as (router, runtime):
        boots = [boot_seconds() for _ in range(ROUNDS)]
        boot = statistics.median(boots)
        version = 1
        runtime.deploy(spec(version, "g1"), {"web": 1}, lambda _: None)
        scales = []
        for _ in range(ROUNDS):
            started = time.monotonic()
            runtime.scale("bench", {"web": 4}, lambda _: None)
            scales.append(time.monotonic() - started)
            assert sum(p.state == "up" for p in runtime.status("bench")) == 4
            runtime.scale("bench", {"web": 1}, lambda _: None)
        configs = []
        for _ in range(ROUNDS):
            version += 1
            wanted = f"g{version}"
            seen: list[float] = []
            started = time.monotonic()

            def poll(wanted: str = wanted, started: float = started, seen: list[float] = seen) -> None:
                while time.monotonic() - started < 30:
                    if greeting(router.port) == wanted:
                        seen.append(time.monotonic() - started)
                        return

            poller = threading.Thread(target=poll)
            poller.start()
            runtime.deploy(spec(version, wanted), {"web": 1}, lambda _: None)
            deployed = time.monotonic() - started
            poller.join()
            configs.append((seen[0], deployed))
        scale = statistics.median(scales)
        print(f"one web process boot (spawn → healthy), median of {ROUNDS}: {boot:.3f}s")
        print(f"scale web=1 → web=4 until all up and routed, median: {scale:.3f}s")
        print(f"  minus one boot: {scale - boot:.3f}s  (ratio scale/boot {scale / boot:.2f})")
        first = statistics.median(c[0] for c in configs)
        whole = statistics.median(c[1] for c in configs)
        print(
            f"config change → new release serving, median: {first:.3f}s (deploy call incl. drain: {whole:.3f}s)"
        )


if __name__ == "__main__":
    main()
