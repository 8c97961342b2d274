"""Shared pieces of the broker benchmarks: real servers, the broker under gunicorn, statistics.

Why a module: the three broker benchmarks (``bench.broker_bind``, ``bench.broker_catalog``,
``bench.broker_scale``) must measure the broker exactly as an operator runs it — the
``moorage broker`` command, gunicorn, the SQLite state database in a data dir — against
real servers on loopback ports, and stop everything they start. Doing that once here
keeps each benchmark script about what it measures.

- :func:`bench_dir`: a temp dir (0711, so the unprivileged server user can traverse it)
  removed at the end;
- :func:`embedded_postgres`: Moorage's own PostgreSQL (``moorage.embedded``) in it;
- :func:`broker_process`: ``python -m moorage.cli.main broker`` in its own session,
  waited for on ``/healthz``, stopped with SIGTERM (SIGKILL after a grace period);
- :func:`percentile`, :func:`latencies`, :func:`summary`: latency figures;
- :func:`tree_rss`: summed resident memory of a process and its descendants (/proc).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from moorage.embedded import EmbeddedPostgres
from moorage.embedded.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
USERNAME = "moorage"
PASSWORD = "bench-broker-password"
API_VERSION = "2.17"


@contextmanager
def bench_dir(prefix: str) -> Iterator[Path]:
    """A fresh temp dir the unprivileged service user can traverse; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def embedded_postgres(base: Path, *, durable: bool = True) -> Iterator[str]:
    """Moorage's embedded PostgreSQL in ``base`` (SSL, scram), yielding its admin URL."""
    server = EmbeddedPostgres(base, durable=durable)
    try:
        yield server.start()
    finally:
        server.stop()


@dataclass(frozen=True)
class Broker:
    """A running ``moorage broker``: its URL, master pid, data dir and log file."""

    url: str
    pid: int
    data_dir: Path
    log: Path

    def client(self, timeout: float = 60) -> httpx.Client:
        """A keep-alive HTTP client with the broker's credentials and API version."""
        return httpx.Client(
            base_url=self.url,
            auth=(USERNAME, PASSWORD),
            headers={"X-Broker-API-Version": API_VERSION},
            timeout=timeout,
        )


def broker_env(data_dir: Path, catalog_dir: Path, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of ``moorage broker``: this process's, minus any ``MOORAGE_*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update(
        {
            "MOORAGE_DATA_DIR": str(data_dir),
            "MOORAGE_CATALOG_DIR": str(catalog_dir),
            "MOORAGE_BROKER_PORT": str(port),
            "MOORAGE_BROKER_PASSWORD": PASSWORD,
        }
    )
    env.update(extra)
    return env


@contextmanager
def broker_process(
    data_dir: Path, catalog_dir: Path, extra_env: Mapping[str, str] | None = None, start_timeout: float = 60
) -> Iterator[Broker]:
    """``moorage broker`` (gunicorn, default settings) serving ``catalog_dir``; stopped on exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = data_dir / "broker.log"
    env = broker_env(data_dir, catalog_dir, port, extra_env or {})
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moorage.cli.main", "broker"],
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=ROOT,
        )
    broker = Broker(f"http://127.0.0.1:{port}", proc.pid, data_dir, log)
    try:
        _await_healthy(proc, broker, start_timeout)
        yield broker
    finally:
        _stop(proc)


def _await_healthy(proc: subprocess.Popen[bytes], broker: Broker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"moorage broker exited with {proc.returncode}:\n{_tail(broker.log)}")
            try:
                if http.get(broker.url + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"moorage broker did not answer /healthz within {timeout:.0f} s:\n{_tail(broker.log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the broker's process group (gunicorn stops its workers), SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- statistics -------------------------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    """The ``pct``-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def latencies(call: Callable[[], object], count: int) -> list[float]:
    """Seconds taken by each of ``count`` sequential calls."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    """p50, p99 and mean of latency samples, in milliseconds."""
    return {
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
    }


def expect(response: httpx.Response, status: int) -> httpx.Response:
    """``response`` if it has ``status``; otherwise stop the benchmark saying what came back."""
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code} "
            f"(expected {status}): {response.text[:500]}"
        )
    return response


# -- memory -------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from the ``PPid`` of each /proc entry."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> tuple[int, int]:
    """(summed VmRSS in KiB, number of processes) of ``pid`` and its descendants."""
    pids = descendants(pid)
    return sum(rss_kib(p) for p in pids), len(pids)
