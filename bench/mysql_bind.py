"""Benchmark: MySQL bind+unbind cycles per second through the OSB API vs the same SQL by hand.

What is measured: one cycle is ``PUT …/service_bindings/<id>`` (a new user with a
password and its privileges on the instance's database: ``CREATE USER``, ``ALTER USER``,
``GRANT``) followed by ``DELETE`` of that binding (``DROP USER``, list and kill its
connections), on one instance of the ``mysql`` offering (plan ``shared-small``,
synchronous), against Moorage's embedded MariaDB (durable, as ``moorage broker`` starts
it). The broker is the ``moorage broker`` command (gunicorn, default settings, SQLite
state in its data dir).

Baseline (``direct``): the same statements, through the very functions the provider
uses (:mod:`moorage.providers.mysql_accounts`), from one process holding one open
PyMySQL connection, as a careful operator script would. Same server, same database,
same run; rounds alternate the ways so that load from other processes hits all of them.

Informational: ``provider`` is :class:`MysqlProvider` ``bind``/``unbind`` in this process
(no HTTP, no state database), and ``noop`` the same OSB cycle on the no-op offering (the
broker's own cost per cycle).

Target: broker rate >= direct rate / 1.5. Run from the repository root::

    .venv/bin/python -m bench.mysql_bind [--cycles 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.broker_bind import NOOP, NOOP_FILE, broker_cycles, deprovision, provision, report, run_rounds
from bench.common import ROOT, Broker, bench_dir, broker_process
from moorage.catalog.loader import load_catalog
from moorage.catalog.provider import BindingContext, InstanceContext
from moorage.embedded import EmbeddedMariaDB
from moorage.providers import mysql_accounts
from moorage.providers.mysql import MysqlProvider, binding_user, database_name
from moorage.settings import Settings
from tests.fixtures.mysql import connect

OFFERING_FILE = ROOT / "catalog" / "mysql.yaml"
IDS = ("3eb26b07-3bc5-47c3-9126-83dab2aed7d8", "877897ee-d1db-426c-a8b3-5ff4c338e87f")  # shared-small, sync
CONNECTION_LIMIT = 20  # shared-small's


def catalog_folder(base: Path) -> Path:
    """The mysql and no-op offerings only (so no other backend is started)."""
    folder = base / "catalog"
    folder.mkdir()
    for offering in (OFFERING_FILE, NOOP_FILE):
        shutil.copy(offering, folder / offering.name)
    return folder


@contextmanager
def embedded_mariadb(base: Path) -> Iterator[str]:
    server = EmbeddedMariaDB(base)
    try:
        yield server.start()
    finally:
        server.stop()


def direct_cycles(admin_url: str, instance_id: str, count: int) -> float:
    """Seconds for ``count`` cycles of the same statements on one open PyMySQL connection."""
    database = database_name(instance_id)
    with connect(admin_url) as conn, conn.cursor() as cur:
        start = time.perf_counter()
        for _ in range(count):
            user = binding_user(instance_id, str(uuid.uuid4()))
            mysql_accounts.create_user(
                cur, user, secrets.token_urlsafe(24), database, max_connections=CONNECTION_LIMIT
            )
            mysql_accounts.drop_user(cur, user)
        return time.perf_counter() - start


def provider_cycles(admin_url: str, catalog_dir: Path, instance_id: str, count: int) -> float:
    """Seconds for ``count`` cycles of ``MysqlProvider.bind``/``unbind`` (no HTTP, no state)."""
    settings = Settings(catalog_dir=str(catalog_dir)).with_group(services={"mysql_admin_url": admin_url})
    offering = load_catalog(settings.catalog_dirs).offering(IDS[0])
    assert offering is not None
    plan = offering.plan(IDS[1])
    assert plan is not None
    instance = InstanceContext(instance_id, offering, plan, {}, {}, settings)
    provider = MysqlProvider(settings)
    start = time.perf_counter()
    for _ in range(count):
        ctx = BindingContext(str(uuid.uuid4()), instance, {}, {})
        provider.bind(ctx)
        provider.unbind(ctx)
    elapsed = time.perf_counter() - start
    provider.close()
    return elapsed


def measure(
    broker: Broker, admin_url: str, catalog_dir: Path, args: argparse.Namespace
) -> dict[str, list[float]]:
    instance_id, noop_id = str(uuid.uuid4()), str(uuid.uuid4())
    with broker.client() as http:
        provision(http, instance_id, IDS)
        provision(http, noop_id, NOOP)
        ways: dict[str, Callable[[int], float]] = {
            "broker": lambda n: broker_cycles(http, instance_id, n, IDS),
            "direct": lambda n: direct_cycles(admin_url, instance_id, n),
        }
        if not args.no_breakdown:
            ways["provider"] = lambda n: provider_cycles(admin_url, catalog_dir, instance_id, n)
            ways["noop"] = lambda n: broker_cycles(http, noop_id, n, NOOP)
        try:
            return run_rounds(ways, args.cycles, args.rounds)
        finally:
            deprovision(http, instance_id, IDS)
            deprovision(http, noop_id, NOOP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=40, help="bind+unbind cycles per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the informational provider and noop ways"
    )
    args = parser.parse_args()
    with bench_dir("moorage-bench-mysql-") as base:
        catalog_dir = catalog_folder(base)
        with embedded_mariadb(base / "mariadb") as admin_url:
            env = {"MOORAGE_SERVICES_MYSQL_ADMIN_URL": admin_url}
            with broker_process(base / "state", catalog_dir, env) as broker:
                print(
                    f"broker {broker.url} (gunicorn pid {broker.pid}); MariaDB on {admin_url.split('@')[1]}"
                )
                rates = measure(broker, admin_url, catalog_dir, args)
    report(rates)


if __name__ == "__main__":
    main()
