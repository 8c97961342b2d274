"""Shared pieces of the cloud offering benchmarks: one lifecycle timed three ways against emulators.

Why a module: ``bench.aws_s3`` and ``bench.gcp_bigquery`` time the same lifecycle —
provision, bind, unbind, deprovision of the offering's ``standard`` plan — done directly
with the cloud's libraries (each benchmark's own baseline), by the provider in this
process, and through the broker's OSB API (the test fixtures' in-process broker, with
its worker and SQLite state), and report each way's median against the direct one.
Doing that once here keeps each benchmark about its cloud's calls. (``bench.common``
has the pieces of the benchmarks that run ``moorage broker`` itself.)
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from moorage.catalog.loader import load_offering
from moorage.catalog.provider import BindingContext, InstanceContext, Provider
from moorage.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5  # each way's median / direct's

Lifecycle = Callable[[], None]


def offering_file(offering: str) -> Path:
    return ROOT / "catalog" / f"{offering}.yaml"


def provider_lifecycle(provider: Provider, offering: str, settings: Settings) -> Lifecycle:
    """One lifecycle of a new instance and binding by ``provider``, called in this process."""
    loaded = load_offering(offering_file(offering))
    plan = loaded.plan_named("standard")
    assert plan is not None

    def lifecycle() -> None:
        ctx = InstanceContext(str(uuid.uuid4()), loaded, plan, {}, {}, settings)
        ctx = InstanceContext(
            ctx.instance_id, loaded, plan, {}, dict(provider.provision(ctx).outputs), settings
        )
        binding = BindingContext(str(uuid.uuid4()), ctx, {}, {})
        result = provider.bind(binding)
        provider.unbind(BindingContext(binding.binding_id, ctx, {}, result.outputs))
        provider.deprovision(ctx)

    return lifecycle


def broker_lifecycle(
    data_dir: Path, offering: str, **groups: dict[str, Any]
) -> tuple[Lifecycle, Callable[[], None]]:
    """One lifecycle through a broker serving only ``offering`` (settings ``groups``); and its stop.

    The test fixtures' broker is imported here, not at the top: a benchmark can go on
    without it (``bench.aws_s3`` says so when the import fails).
    """
    from tests.fixtures.broker import broker_settings, new_id, start_broker

    catalog = data_dir / "catalog"
    catalog.mkdir()
    (catalog / f"{offering}.yaml").write_text(offering_file(offering).read_text())
    running = start_broker(broker_settings(data_dir / "broker", [catalog], **groups))
    osb = running.client
    service_id, plan_id = osb.ids(offering, "standard")

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


def lifecycle_times(ways: dict[str, Lifecycle], rounds: int) -> dict[str, list[float]]:
    """Seconds of every round of every way, after one warm-up each (clients, connections).

    The ways take turns within each round (direct, providers, broker, direct, …), so the
    emulator's own drift over the run (warming up, a loaded machine) weighs on all alike.
    """
    for lifecycle in ways.values():
        lifecycle()
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, lifecycle in ways.items():
            start = time.perf_counter()
            lifecycle()
            times[name].append(time.perf_counter() - start)
    return times


def report_lifecycles(title: str, results: dict[str, list[float]]) -> None:
    """Median and p90 of each way, its ratio to ``direct``, and the worst ratio against the target."""
    base = statistics.median(results["direct"])
    print(title)
    for name, times in results.items():
        median = statistics.median(times)
        p90 = sorted(times)[int(len(times) * 0.9) - 1]
        print(
            f"  {name:<10} median {median * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   ratio {median / base:4.2f}"
        )
    worst = max(statistics.median(t) for t in results.values()) / base
    print(f"target ratio <= {TARGET}: {'met' if worst <= TARGET else 'NOT met'} (worst {worst:.2f})")


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set (where the cloud libraries look for credentials),
    put back as it was afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
