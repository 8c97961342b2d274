"""Benchmark: what taking an app's lock costs, on PostgreSQL state and on SQLite state.

What is measured: one uncontended ``hold`` + release of :mod:`moorage.store.locks`, as
every change of an app does once — on PostgreSQL (Moorage's embedded server, SSL and
scram as ``moorage up`` runs it) a fresh connection, ``application_name``, a
``pg_try_advisory_lock`` and the unlock; on SQLite an ``flock`` on the lock file and
writing who holds it.

Baselines, same run: for PostgreSQL, opening a connection of the same engine settings
and running ``SELECT 1`` (the lock's own cost is the ratio above 1); for SQLite, the
per-process ``threading.Lock`` this replaced. Run from the repository root::

    .venv/bin/python -m bench.app_locks [--count 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bench.common import bench_dir, embedded_postgres, latencies, summary
from moorage.store.db import Database
from moorage.store.locks import Holder, locks_for

HOLDER = Holder(user="alice", what="config:set", since=dt.datetime.now(dt.UTC))


def hold_once(locks) -> None:  # type: ignore[no-untyped-def]
    with locks.hold("shop", HOLDER, 1.0):
        pass


def postgres(base: Path, count: int) -> tuple[dict[str, float], dict[str, float]]:
    with embedded_postgres(base / "pg") as url:
        db = Database(url)
        locks = locks_for(db.engine, base / "data")
        plain = create_engine(db.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

        def connect_once() -> None:
            with plain.connect() as conn:
                conn.execute(text("SELECT 1"))

        hold_once(locks)
        connect_once()
        lock, baseline = latencies(lambda: hold_once(locks), count), latencies(connect_once, count)
        plain.dispose()
        db.dispose()
    return summary(lock), summary(baseline)


def sqlite(base: Path, count: int) -> tuple[dict[str, float], dict[str, float]]:
    db = Database(f"sqlite:///{base / 'state.db'}")
    locks = locks_for(db.engine, base / "data")
    old = threading.Lock()

    def thread_lock() -> None:
        with old:
            pass

    hold_once(locks)
    lock, baseline = latencies(lambda: hold_once(locks), count), latencies(thread_lock, count)
    db.dispose()
    return summary(lock), summary(baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    with bench_dir("moorage-bench-locks-") as base:
        for name, run, against in (
            ("postgresql advisory lock", postgres, "connect + SELECT 1"),
            ("sqlite flock", sqlite, "threading.Lock"),
        ):
            lock, baseline = run(base, args.count)
            print(
                f"{name}: p50 {lock['p50_ms']:.3f} ms, p99 {lock['p99_ms']:.3f} ms; "
                f"{against}: p50 {baseline['p50_ms']:.4f} ms; "
                f"ratio {lock['p50_ms'] / baseline['p50_ms']:.2f}"
            )


if __name__ == "__main__":
    main()
