"""Shared pieces of the broker benchmarks: real servers, the broker under gunicorn, statistics.

Why a module: the broker benchmarks (``bench.broker_bind``, ``bench.mysql_bind``,
``bench.broker_catalog``, ``bench.broker_scale`` and others) must measure the broker
exactly as an operator runs it — the ``moorage broker`` command, gunicorn, the SQLite
state database in a data dir — against real servers on loopback ports, and stop
everything they start. Doing that once here keeps each benchmark script about what it
measures.

- :func:`bench_dir`: a temp dir (0711, so the unprivileged server user can traverse it)
  removed at the end;
- :func:`embedded_postgres`: Moorage's own PostgreSQL (``moorage.embedded``) in it;
- :func:`broker_process`: ``python -m moorage.cli.main broker`` in its own session,
  waited for on ``/healthz``, stopped with SIGTERM (SIGKILL after a grace period);
- :class:`BindBench`, :func:`run_bind_bench`: bind + unbind cycles per second through
  the broker against the same statements run directly (and, for the breakdown, the
  provider alone and the no-op offering), rounds alternating, medians and the ratio;
- :func:`percentile`, :func:`latencies`, :func:`summary`: latency figures;
- :func:`tree_rss`: summed resident memory of a process and its descendants (/proc).

The other shared pieces: ``bench.common_platform`` (builds, the local runtime) and
``bench.common_cloud`` (a cloud offering's lifecycle three ways).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from moorage.catalog.loader import load_catalog
from moorage.catalog.provider import BindingContext, InstanceContext, Provider
from moorage.embedded import EmbeddedPostgres
from moorage.embedded.ports import free_port
from moorage.settings import Settings

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


# -- bind + unbind cycles: the broker against the same statements run directly ----------

NOOP_FILE = ROOT / "tests" / "catalog" / "noop.yaml"
NOOP = ("731892d1-fd21-499c-b512-700542df581f", "89d9641a-a572-45ac-8c81-6a0397f18129")  # noop, sync
BIND_TARGET = 1.5  # direct / broker


@dataclass(frozen=True)
class Backend:
    """The server an offering's instances live on, started by the benchmark."""

    name: str  # as printed: "PostgreSQL", "MariaDB"
    admin_url_setting: str  # the services group's key for its admin URL
    start: Callable[[Path], AbstractContextManager[str]]  # in the temp dir; yields the admin URL


@dataclass(frozen=True)
class BindBench:
    """What one offering's bind benchmark brings; :func:`run_bind_bench` does the rest."""

    description: str
    prefix: str  # of the temp dir
    offering_file: Path
    ids: tuple[str, str]  # service and (synchronous) plan
    provider: Callable[[Settings], Provider]
    direct: Callable[[str, str, int], float]  # (admin URL, instance id, cycles) -> seconds
    backend: Backend


def catalog_folder(base: Path, *offering_files: Path) -> Path:
    """A catalog of these offerings only (so no other backend is started)."""
    folder = base / "catalog"
    folder.mkdir()
    for offering in offering_files:
        shutil.copy(offering, folder / offering.name)
    return folder


def provision(http: httpx.Client, instance_id: str, ids: tuple[str, str]) -> None:
    body = {"service_id": ids[0], "plan_id": ids[1], "organization_guid": "org", "space_guid": "space"}
    expect(http.put(f"/v2/service_instances/{instance_id}", json=body), 201)


def deprovision(http: httpx.Client, instance_id: str, ids: tuple[str, str]) -> None:
    params = {"service_id": ids[0], "plan_id": ids[1]}
    expect(http.delete(f"/v2/service_instances/{instance_id}", params=params), 200)


def broker_cycles(http: httpx.Client, instance_id: str, count: int, ids: tuple[str, str]) -> float:
    """Seconds for ``count`` bind+unbind cycles through the OSB API (one client, keep-alive)."""
    path = f"/v2/service_instances/{instance_id}/service_bindings/"
    bind_body = {"service_id": ids[0], "plan_id": ids[1], "bind_resource": {"app_guid": "bench"}}
    unbind_params = {"service_id": ids[0], "plan_id": ids[1]}
    start = time.perf_counter()
    for _ in range(count):
        binding_id = str(uuid.uuid4())
        expect(http.put(path + binding_id, json=bind_body), 201)
        expect(http.delete(path + binding_id, params=unbind_params), 200)
    return time.perf_counter() - start


def provider_cycles(
    bench: BindBench, admin_url: str, catalog_dir: Path, instance_id: str, count: int
) -> float:
    """Seconds for ``count`` cycles of the provider's ``bind``/``unbind`` (no HTTP, no state)."""
    settings = Settings(catalog_dir=str(catalog_dir)).with_group(
        services={bench.backend.admin_url_setting: admin_url}
    )
    offering = load_catalog(settings.catalog_dirs).offering(bench.ids[0])
    assert offering is not None
    plan = offering.plan(bench.ids[1])
    assert plan is not None
    instance = InstanceContext(instance_id, offering, plan, {}, {}, settings)
    provider = bench.provider(settings)
    start = time.perf_counter()
    for _ in range(count):
        ctx = BindingContext(str(uuid.uuid4()), instance, {}, {})
        provider.bind(ctx)
        provider.unbind(ctx)
    elapsed = time.perf_counter() - start
    provider.close()
    return elapsed


def run_rounds(ways: dict[str, Callable[[int], float]], cycles: int, rounds: int) -> dict[str, list[float]]:
    """Cycles per second of each way, per round; the ways alternate within every round."""
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():  # warm-up: connections, imports, caches
        way(3)
    for index in range(rounds):
        for name, way in ways.items():
            rate = cycles / way(cycles)
            rates[name].append(rate)
            print(f"  round {index + 1}: {name:8s} {rate:7.1f} cycles/s")
    return rates


def measure_binds(
    bench: BindBench, broker: Broker, admin_url: str, catalog_dir: Path, args: argparse.Namespace
) -> dict[str, list[float]]:
    """The rates of every way, on one instance of the offering and one of the no-op offering."""
    instance_id, noop_id = str(uuid.uuid4()), str(uuid.uuid4())
    with broker.client() as http:
        provision(http, instance_id, bench.ids)
        provision(http, noop_id, NOOP)
        ways: dict[str, Callable[[int], float]] = {
            "broker": lambda n: broker_cycles(http, instance_id, n, bench.ids),
            "direct": lambda n: bench.direct(admin_url, instance_id, n),
        }
        if not args.no_breakdown:
            ways["provider"] = lambda n: provider_cycles(bench, admin_url, catalog_dir, instance_id, n)
            ways["noop"] = lambda n: broker_cycles(http, noop_id, n, NOOP)
        try:
            return run_rounds(ways, args.cycles, args.rounds)
        finally:
            deprovision(http, instance_id, bench.ids)
            deprovision(http, noop_id, NOOP)


def report_binds(rates: dict[str, list[float]]) -> None:
    """Medians per way, the direct / broker ratio against the target, and the breakdown."""
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print("\nmedian cycles/s (bind + unbind):")
    for name, value in medians.items():
        print(f"  {name:8s} {value:7.1f}  ({1000 / value:.1f} ms per cycle)")
    ratio = medians["direct"] / medians["broker"]
    verdict = "meets" if ratio <= BIND_TARGET else "MISSES"
    print(f"\ndirect / broker = {ratio:.2f} ({verdict} the target of at most {BIND_TARGET})")
    if "provider" in medians:
        ms = {name: 1000 / value for name, value in medians.items()}
        print(
            f"per cycle: direct SQL {ms['direct']:.1f} ms; the provider alone {ms['provider']:.1f} ms "
            f"(+{ms['provider'] - ms['direct']:.1f} ms: its own connections); the broker's own work "
            f"(noop) {ms['noop']:.1f} ms; broker {ms['broker']:.1f} ms"
        )


def run_bind_bench(bench: BindBench) -> None:
    """Parse the command line, start the backend and the broker, measure, report."""
    parser = argparse.ArgumentParser(description=bench.description)
    parser.add_argument("--cycles", type=int, default=40, help="bind+unbind cycles per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the informational provider and noop ways"
    )
    args = parser.parse_args()
    with bench_dir(bench.prefix) as base:
        catalog_dir = catalog_folder(base, bench.offering_file, NOOP_FILE)
        with bench.backend.start(base) as admin_url:
            env = {f"MOORAGE_SERVICES_{bench.backend.admin_url_setting.upper()}": admin_url}
            with broker_process(base / "state", catalog_dir, env) as broker:
                where = admin_url.split("@")[1]
                print(f"broker {broker.url} (gunicorn pid {broker.pid}); {bench.backend.name} on {where}")
                rates = measure_binds(bench, broker, admin_url, catalog_dir, args)
    report_binds(rates)


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
