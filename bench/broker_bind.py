"""Benchmark: bind+unbind cycles per second through the OSB API vs the same SQL done directly.

What is measured: one cycle is ``PUT …/service_bindings/<id>`` (a new login role with a
password, member of the instance's group, ``SET role``) followed by ``DELETE`` of that
binding (NOLOGIN, disconnect, REASSIGN/DROP OWNED, DROP ROLE), on one instance of the
``postgresql`` offering (plan ``shared-small``, synchronous), against Moorage's embedded
PostgreSQL (SSL, scram-sha-256, durable as ``moorage up`` runs it). The broker is the
``moorage broker`` command (gunicorn, default settings, SQLite state in its data dir).

Baseline (``direct``): the same statements, through the very functions the provider
uses (:mod:`moorage.providers.pg_roles`), from one process holding two open
connections (to ``postgres`` for CREATE ROLE and to the instance's database for the
drop), as a careful operator script would. Same server, same database, same run;
rounds alternate broker and direct so that load from other processes hits both.

Informational, to show where the broker's extra time goes: ``provider`` is
:class:`PostgresProvider` ``bind``/``unbind`` called in this process (no HTTP, no state
database; it opens its own connections per call), and ``noop`` is the same OSB cycle
through the same broker on an instance of the no-op offering (no backend: the broker's
own cost per cycle — HTTP, validation, state rows, operations).

Target: broker rate >= direct rate / 1.5. Run from the repository root::

    .venv/bin/python -m bench.broker_bind [--cycles 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from bench.common import ROOT, Broker, bench_dir, broker_process, embedded_postgres, expect
from moorage.catalog.loader import load_catalog
from moorage.catalog.provider import BindingContext, InstanceContext
from moorage.providers import pg_roles
from moorage.providers.postgres import PostgresProvider, binding_role, instance_names
from moorage.settings import Settings

OFFERING_FILE = ROOT / "catalog" / "postgresql.yaml"
SERVICE_ID = "877b5633-3844-44c9-9e28-0ccd9097b7c7"
PLAN_ID = "d7a0ef60-3cea-486b-9f44-d60d438eecd0"  # shared-small, synchronous
NOOP_FILE = ROOT / "tests" / "catalog" / "noop.yaml"
NOOP = ("731892d1-fd21-499c-b512-700542df581f", "89d9641a-a572-45ac-8c81-6a0397f18129")  # noop, sync
TARGET = 1.5


def catalog_folder(base: Path) -> Path:
    """The postgresql and no-op offerings only (so no other backend is started)."""
    folder = base / "catalog"
    folder.mkdir()
    for offering in (OFFERING_FILE, NOOP_FILE):
        shutil.copy(offering, folder / offering.name)
    return folder


def provision(http: httpx.Client, instance_id: str, ids: tuple[str, str] = (SERVICE_ID, PLAN_ID)) -> None:
    body = {"service_id": ids[0], "plan_id": ids[1], "organization_guid": "org", "space_guid": "space"}
    expect(http.put(f"/v2/service_instances/{instance_id}", json=body), 201)


def deprovision(http: httpx.Client, instance_id: str, ids: tuple[str, str] = (SERVICE_ID, PLAN_ID)) -> None:
    params = {"service_id": ids[0], "plan_id": ids[1]}
    expect(http.delete(f"/v2/service_instances/{instance_id}", params=params), 200)


def broker_cycles(
    http: httpx.Client, instance_id: str, count: int, ids: tuple[str, str] = (SERVICE_ID, PLAN_ID)
) -> float:
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


def direct_cycles(admin_url: str, instance_id: str, count: int) -> float:
    """Seconds for ``count`` cycles of the same statements on two open psycopg connections."""
    database, group = instance_names(instance_id)
    with (
        psycopg.connect(admin_url, autocommit=True) as admin,
        psycopg.connect(admin_url, autocommit=True, dbname=database) as in_db,
    ):
        start = time.perf_counter()
        for _ in range(count):
            role = binding_role(instance_id, str(uuid.uuid4()))
            pg_roles.create_login_role(admin, role, secrets.token_urlsafe(24), group)
            pg_roles.drop_login_role(in_db, role, group)
        return time.perf_counter() - start


def provider_cycles(admin_url: str, catalog_dir: Path, instance_id: str, count: int) -> float:
    """Seconds for ``count`` cycles of ``PostgresProvider.bind``/``unbind`` (no HTTP, no state)."""
    settings = Settings(catalog_dir=str(catalog_dir)).with_group(services={"postgres_admin_url": admin_url})
    offering = load_catalog(settings.catalog_dirs).offering(SERVICE_ID)
    assert offering is not None
    plan = offering.plan(PLAN_ID)
    assert plan is not None
    instance = InstanceContext(instance_id, offering, plan, {}, {}, settings)
    provider = PostgresProvider(settings)
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


def report(rates: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print("\nmedian cycles/s (bind + unbind):")
    for name, value in medians.items():
        print(f"  {name:8s} {value:7.1f}  ({1000 / value:.1f} ms per cycle)")
    ratio = medians["direct"] / medians["broker"]
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"\ndirect / broker = {ratio:.2f} ({verdict} the target of at most {TARGET})")
    if "provider" in medians:
        ms = {name: 1000 / value for name, value in medians.items()}
        print(
            f"per cycle: direct SQL {ms['direct']:.1f} ms; the provider alone {ms['provider']:.1f} ms "
            f"(+{ms['provider'] - ms['direct']:.1f} ms: its own connections); the broker's own work "
            f"(noop) {ms['noop']:.1f} ms; broker {ms['broker']:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=40, help="bind+unbind cycles per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the informational provider and noop ways"
    )
    args = parser.parse_args()
    with bench_dir("moorage-bench-bind-") as base:
        catalog_dir = catalog_folder(base)
        with embedded_postgres(base / "pg") as admin_url:
            env = {"MOORAGE_SERVICES_POSTGRES_ADMIN_URL": admin_url}
            with broker_process(base / "state", catalog_dir, env) as broker:
                print(
                    f"broker {broker.url} (gunicorn pid {broker.pid}); PostgreSQL on {admin_url.split('@')[1]}"
                )
                rates = measure(broker, admin_url, catalog_dir, args)
    report(rates)


def measure(
    broker: Broker, admin_url: str, catalog_dir: Path, args: argparse.Namespace
) -> dict[str, list[float]]:
    instance_id, noop_id = str(uuid.uuid4()), str(uuid.uuid4())
    with broker.client() as http:
        provision(http, instance_id)
        provision(http, noop_id, NOOP)
        ways: dict[str, Callable[[int], float]] = {
            "broker": lambda n: broker_cycles(http, instance_id, n),
            "direct": lambda n: direct_cycles(admin_url, instance_id, n),
        }
        if not args.no_breakdown:
            ways["provider"] = lambda n: provider_cycles(admin_url, catalog_dir, instance_id, n)
            ways["noop"] = lambda n: broker_cycles(http, noop_id, n, NOOP)
        try:
            return run_rounds(ways, args.cycles, args.rounds)
        finally:
            deprovision(http, instance_id)
            deprovision(http, noop_id, NOOP)


if __name__ == "__main__":
    main()
