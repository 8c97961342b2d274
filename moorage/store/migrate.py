"""Bring a state database to the newest schema with alembic.

Why programmatic: ``moorage up``, the broker and the tests all call :func:`upgrade`
at start-up, so an operator never runs a separate migration step by hand, and the
migrations in ``moorage/store/migrations`` are exercised by every test run.

Why a lock: the broker and the controller start side by side against one state
database, and both upgrade it. Without serialising, both read "no version yet" and
both create the same tables, and the slower one dies with "table already exists".
PostgreSQL serialises with an advisory lock taken inside the migration transaction
(see ``migrations/env.py``); SQLite, whose DDL alembic runs outside a transaction,
with an exclusive ``flock`` on a file beside the database.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from moorage.store.db import private_sqlite_file

HERE = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<database>.migrate-lock`` (no-op for other databases)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if not parsed.drivername.startswith("sqlite") or database in ("", ":memory:"):
        yield
        return
    private_sqlite_file(url)  # its folder may not exist yet; alembic would create it too
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)  # private, like the database
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def upgrade(url: str) -> None:
    """Upgrade to head; safe to call from several processes at once."""
    with _sqlite_file_lock(url):
        command.upgrade(alembic_config(url), "head")
