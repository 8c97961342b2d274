"""Engines and units of work.

Why a unit of work per request or job: each OSB request and each worker step reads and
writes in one transaction, and either all of it lands or none. SQLite is tuned for a
server with many threads (WAL, a busy timeout, ``BEGIN IMMEDIATE`` for writers) so the
embedded default behaves like a real database under concurrency.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


def make_engine(url: str, writer: bool = True) -> Engine:
    """An engine for ``url``; on SQLite, ``writer`` engines take the write lock at BEGIN."""
    if url.startswith("sqlite"):
        private_sqlite_file(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin_immediate if writer else _sqlite_begin_deferred)
        return engine
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_nullpool_engine(url: str) -> Engine:
    """For short-lived tools (migrations) that must not keep connections open."""
    private_sqlite_file(url)
    return create_engine(url, poolclass=NullPool)


def private_sqlite_file(url: str) -> None:
    """Create a SQLite state file (and its folder) readable by Moorage alone.

    The data dir may be traversable by app users; SQLite gives its -wal and -shm files
    the database file's mode, so creating the file 0600 first covers all three.
    """
    if not url.startswith("sqlite"):
        return
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    Path(path).touch(mode=0o600, exist_ok=True)
    Path(path).chmod(0o600)


def _sqlite_on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _sqlite_on_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
    # Take the write lock up front: two writers never deadlock upgrading read locks.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(conn) -> None:  # type: ignore[no-untyped-def]
    # Readers never take the write lock; with WAL they do not block writers either.
    conn.exec_driver_sql("BEGIN")


class Database:
    """Engines and session factories: ``sessions()`` to read, ``unit_of_work()`` to write.

    On SQLite the two use separate engines so that a read inside a write transaction
    (or beside one) never waits for the write lock.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.read_engine = make_engine(url, writer=False) if url.startswith("sqlite") else self.engine
        self.sessions = sessionmaker(self.read_engine, expire_on_commit=False)
        self._writers = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._writers() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
