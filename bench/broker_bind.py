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

import secrets
import time
import uuid

import psycopg

from bench.common import ROOT, Backend, BindBench, embedded_postgres, run_bind_bench
from moorage.providers import pg_roles
from moorage.providers.postgres import PostgresProvider, binding_role, instance_names

OFFERING_FILE = ROOT / "catalog" / "postgresql.yaml"
IDS = ("877b5633-3844-44c9-9e28-0ccd9097b7c7", "d7a0ef60-3cea-486b-9f44-d60d438eecd0")  # shared-small, sync


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


BENCH = BindBench(
    description=__doc__.splitlines()[0], prefix="moorage-bench-bind-",
    offering_file=OFFERING_FILE, ids=IDS, provider=PostgresProvider, direct=direct_cycles,
    backend=Backend("PostgreSQL", "postgres_admin_url", lambda base: embedded_postgres(base / "pg")),
)  # fmt: skip


if __name__ == "__main__":
    run_bind_bench(BENCH)
