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

import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import ROOT, Backend, BindBench, run_bind_bench
from moorage.embedded import EmbeddedMariaDB
from moorage.providers import mysql_accounts
from moorage.providers.mysql import MysqlProvider, binding_user, database_name
from tests.fixtures.mysql import connect

OFFERING_FILE = ROOT / "catalog" / "mysql.yaml"
IDS = ("3eb26b07-3bc5-47c3-9126-83dab2aed7d8", "877897ee-d1db-426c-a8b3-5ff4c338e87f")  # shared-small, sync
CONNECTION_LIMIT = 20  # shared-small's


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


BENCH = BindBench(
    description=__doc__.splitlines()[0], prefix="moorage-bench-mysql-",
    offering_file=OFFERING_FILE, ids=IDS, provider=MysqlProvider, direct=direct_cycles,
    backend=Backend("MariaDB", "mysql_admin_url", lambda base: embedded_mariadb(base / "mariadb")),
)  # fmt: skip


if __name__ == "__main__":
    run_bind_bench(BENCH)
