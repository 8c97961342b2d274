"""Shared pieces of the platform benchmarks: builds timed against the same by hand, the local runtime.

Why a module: the three builder benchmarks (``bench.build``, ``bench.go_build``,
``bench.node_build``) measure the same three things for different apps — a cold build
with an empty build cache, a warm rebuild of the unchanged app, and what a developer
would do by hand — and report them against the same targets; the runtime benchmarks
(``bench.scale``, ``bench.router``, ``bench.kubernetes_scale``) all need the local
runtime behind its own nginx router in a throwaway data dir. Doing that once here keeps
each benchmark about its app or its figure. (``bench.common`` has the broker's pieces.)

- :func:`cold_and_warm`, :func:`by_hand`, :func:`build_rounds`, :func:`report_builds`;
- :func:`local_runtime`: a started router and a :class:`LocalRuntime`, stopped and
  removed at the end.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from moorage.embedded.ports import free_port
from moorage.platform.builder import Builder, BuildResult
from moorage.platform.router import Router
from moorage.platform.runtime.local import LocalRuntime
from moorage.settings import Settings

COLD_TARGET = 1.2  # cold build / by hand
WARM_TARGET = 0.3  # warm rebuild / cold build


def quiet(_line: str) -> None:
    """A build log that keeps nothing: the benchmarks time builds, they do not show them."""


@dataclass
class BuildRounds:
    """Seconds of every round's cold build, warm rebuild and build by hand."""

    colds: list[float] = field(default_factory=list)
    warms: list[float] = field(default_factory=list)
    hands: list[float] = field(default_factory=list)


def cold_and_warm(app: Path, name: str, prefix: str) -> tuple[float, float, BuildResult]:
    """Seconds of a build of ``app`` with an empty build cache and of a rebuild of it unchanged,
    and the rebuild's result; in a fresh data dir, removed afterwards."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        builder = Builder(Settings(data_dir=data), environ=os.environ)
        started = time.monotonic()
        builder.build(name, app, {}, quiet)
        cold = time.monotonic() - started
        started = time.monotonic()
        result = builder.build(name, app, {}, quiet)
        return cold, time.monotonic() - started, result
    finally:
        shutil.rmtree(data, ignore_errors=True)


def by_hand(app: Path, prefix: str, build: Callable[[Path], None]) -> float:
    """Seconds of the baseline: copy ``app`` to ``<work>/app``, ``build(work)``, ``tar czf`` the result."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        started = time.monotonic()
        shutil.copytree(app, work / "app")
        build(work)
        subprocess.run(["tar", "czf", str(work / "slug.tgz"), "-C", str(work / "app"), "."], check=True)
        return time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_rounds(rounds: int, app: Path, name: str, prefix: str, hand: Callable[[], float]) -> BuildRounds:
    """``rounds`` rounds of a cold build and rebuild then ``hand()``: alternating, so that load
    from other processes weighs on the builder and the baseline alike."""
    runs = BuildRounds()
    for _ in range(rounds):
        cold, warm, _result = cold_and_warm(app, name, prefix)
        runs.colds.append(cold)
        runs.warms.append(warm)
        runs.hands.append(hand())
    return runs


def report_builds(runs: BuildRounds, cold_label: str, hand_label: str) -> dict[str, float]:
    """Print the medians (and every run) and the ratios against the targets; the figures."""
    cold, warm, hand = (statistics.median(values) for values in (runs.colds, runs.warms, runs.hands))
    width = max(26, len(cold_label) + 2, len(hand_label) + 2)
    for label, median, values in (
        (cold_label, cold, runs.colds),
        (hand_label, hand, runs.hands),
        ("warm rebuild", warm, runs.warms),
    ):
        print(f"{label:<{width}}{median:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in values)}")
    print(f"{'cold / by hand':<{width}}{cold / hand:6.2f}     (target <= {COLD_TARGET})")
    print(f"{'warm / cold':<{width}}{warm / cold:6.2f}     (target <= {WARM_TARGET})")
    return {
        "rounds": len(runs.colds),
        "cold_build_s": round(cold, 2),
        "by_hand_s": round(hand, 2),
        "warm_build_s": round(warm, 2),
        "cold_vs_by_hand": round(cold / hand, 2),
        "warm_vs_cold": round(warm / cold, 2),
    }


@contextmanager
def local_runtime(prefix: str, **platform: object) -> Iterator[tuple[Router, LocalRuntime]]:
    """The local runtime behind its own started router, in a fresh data dir (0755: the
    unprivileged app processes and nginx workers enter it); stopped and removed afterwards."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    data.chmod(0o755)
    settings = Settings(data_dir=data).with_group(
        platform={"router_port": free_port(), "stop_grace_seconds": 2.0, **platform}
    )
    router = Router(settings)
    router.start()
    runtime = LocalRuntime(settings, router)
    try:
        yield router, runtime
    finally:
        runtime.close()
        router.stop()
        shutil.rmtree(data, ignore_errors=True)
