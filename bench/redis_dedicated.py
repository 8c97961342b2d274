"""A dedicated Redis instance: time from provision to a working PING, and its idle memory.

What is measured: ``moorage broker`` (gunicorn, default settings, the real catalog) as an
operator runs it. One sample = provision an instance of ``redis dedicated`` (PUT, 201),
bind it (PUT, 201), then PING with the binding's ``REDIS_URL`` (password-only AUTH) until
it answers: the time from the provision request to the first PONG, which is what an app
waits for after ``services:create`` + ``services:bind``. Then, with all instances up and
idle for a second (their clients disconnected), the memory of each instance's
redis-server: VmRSS, its private part (RssAnon) and PSS (shared pages divided among the
processes that map them: the redis-server binary and its libraries are mapped by every
instance).

Baseline, in the same run: ``redis-server`` started by hand on a free port with a minimal
configuration (no persistence) and PINGed until it answers — the floor any supervisor
pays to start Redis — and that server's idle VmRSS.

    .venv/bin/python -m bench.redis_dedicated [--instances 5]

Everything started is stopped at the end (instances deprovisioned, servers stopped).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bench.common import ROOT, bench_dir, broker_process, expect
from moorage.embedded.ports import free_port
from moorage.embedded.processes import read_pidfile
from moorage.embedded.redis_instance import INSTANCES_DIR, InstanceServer, instance_dir_name
from moorage.embedded.redis_supervisor import DedicatedServers


def ping_until_pong(client: redis.Redis, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.ping():
                return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def memory_kib(pid: int) -> tuple[int, int, int]:
    """(VmRSS, RssAnon, Pss) of ``pid`` in KiB; zeros if it is gone."""
    fields: dict[str, int] = {}
    try:
        for path in (f"/proc/{pid}/status", f"/proc/{pid}/smaps_rollup"):
            for line in Path(path).read_text().splitlines():
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "RssAnon", "Pss"):
                    fields[name] = int(rest.split()[0])
    except OSError:
        pass
    return fields.get("VmRSS", 0), fields.get("RssAnon", 0), fields.get("Pss", 0)


def by_hand(base: Path) -> tuple[float, tuple[int, int, int]]:
    """Seconds from starting redis-server to PONG, and its idle memory (KiB)."""
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=base,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)
        ping_until_pong(client)
        elapsed = time.perf_counter() - began
        client.close()
        time.sleep(1.0)
        return elapsed, memory_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=5)
    args = parser.parse_args()
    with bench_dir("moorage-bench-redis-") as base:
        hand = [by_hand(base) for _ in range(args.instances)]
        data_dir = base / "data"
        ids: list[tuple[str, str]] = []
        times: list[float] = []
        memory: list[tuple[int, int, int]] = []
        try:
            with broker_process(data_dir, ROOT / "catalog") as broker, broker.client() as http:
                service = next(s for s in http.get("/v2/catalog").json()["services"] if s["name"] == "redis")
                plan = next(p for p in service["plans"] if p["name"] == "dedicated")
                body = {
                    "service_id": service["id"],
                    "plan_id": plan["id"],
                    "organization_guid": "o",
                    "space_guid": "s",
                }
                for _ in range(args.instances):
                    instance, binding = str(uuid.uuid4()), str(uuid.uuid4())
                    began = time.perf_counter()
                    expect(http.put(f"/v2/service_instances/{instance}", json=body), 201)
                    ids.append((instance, binding))
                    path = f"/v2/service_instances/{instance}/service_bindings/{binding}"
                    creds = expect(http.put(path, json=body), 201).json()["credentials"]
                    client = redis.Redis.from_url(creds["uri"], retry=Retry(NoBackoff(), 0))
                    ping_until_pong(client)
                    times.append(time.perf_counter() - began)
                    client.close()
                time.sleep(1.0)
                for instance, _ in ids:
                    server = InstanceServer(data_dir / INSTANCES_DIR / instance_dir_name(instance))
                    memory.append(memory_kib(read_pidfile(server.pid_file) or 0))
                for instance, binding in ids:
                    params = {"service_id": service["id"], "plan_id": plan["id"]}
                    path = f"/v2/service_instances/{instance}"
                    expect(http.delete(f"{path}/service_bindings/{binding}", params=params), 200)
                    expect(http.delete(path, params=params), 200)
        finally:
            DedicatedServers(data_dir).stop()  # the broker stops them too; this covers a crash
    report(hand, times, memory)


def report(
    hand: list[tuple[float, tuple[int, int, int]]], times: list[float], memory: list[tuple[int, int, int]]
) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    hand_ms = med([h[0] for h in hand]) * 1000
    ping_ms = [t * 1000 for t in times]
    print(f"instances: {len(times)}")
    print(
        f"provision -> PING, broker:    median {med(ping_ms):7.1f} ms  max {max(ping_ms):7.1f} ms  (target < 1000)"
    )
    print(f"start -> PING, redis by hand: median {hand_ms:7.1f} ms;  ratio {med(ping_ms) / hand_ms:.2f}")
    for i, name in enumerate(("VmRSS", "RssAnon (private)", "PSS")):
        ours = [m[i] / 1024 for m in memory]
        theirs = med([h[1][i] / 1024 for h in hand])
        print(
            f"idle {name:<18} dedicated median {med(ours):6.2f} MiB (max {max(ours):6.2f}), "
            f"by hand {theirs:6.2f} MiB;  ratio {med(ours) / theirs:.2f}"
        )
    print("(target: <= 10 MB per idle instance)")


if __name__ == "__main__":
    main()
