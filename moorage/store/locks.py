"""Named locks that hold across controller processes: one app's deploys never overlap.

Why here, in the state layer: the lock must be exactly as shared as the state it
protects. Several controller replicas on one PostgreSQL state take a session-level
advisory lock on a connection of their own, held for the lock's lifetime; when the
holder's process dies its connection closes and PostgreSQL releases the lock, so a
killed controller never leaves an app locked. On SQLite state (one machine) the same
is an ``flock`` on a per-name file in the data dir, which the kernel drops with the
holder's last file descriptor.

Keys: a name maps to 64 bits of BLAKE2b. Two names sharing a key (odds about 1 in
10^10 even for a million names) only make them serialize one another, a spurious wait
or refusal, never a missing exclusion; PostgreSQL keys of other programs in the same
database are just as unlikely to meet ours.

The one gap: if the holder's connection breaks while it works (the database restarts,
the network drops), PostgreSQL releases the lock and the holder is not told; another
controller may then start a change of the same app beside it.

Who holds a lock (for the refusal message) travels with the lock itself: in the
holder connection's ``application_name`` on PostgreSQL, in the lock file on SQLite.
Neither outlives the holder's process, so the message never names a dead holder for
long.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

#: How often a waiting SQLite lock tries again (flock has no timeout of its own).
_POLL_SECONDS = 0.05
#: PostgreSQL keeps ``application_name`` to NAMEDATALEN - 1 bytes.
_APPLICATION_NAME_BYTES = 63


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) a lock and why: shown to whoever is refused."""

    user: str
    what: str
    since: dt.datetime
    #: A long operation (a build): others refuse at once rather than wait behind it.
    long: bool = False

    def encode(self) -> str:
        return f"m|{int(self.long)}|{int(self.since.timestamp())}|{self.user}|{self.what}"

    @classmethod
    def decode(cls, raw: str | None) -> Holder | None:
        parts = (raw or "").split("|", 4)
        if len(parts) == 4:  # cut short (PostgreSQL keeps 63 bytes): the user, without what
            parts.append("…")
        if len(parts) != 5 or parts[0] != "m" or not parts[2].isdigit():
            return None
        since = dt.datetime.fromtimestamp(int(parts[2]), dt.UTC)
        return cls(user=parts[3], what=parts[4], since=since, long=parts[1] == "1")


class LockBusy(Exception):
    """Another process holds the lock; ``holder`` says who, when known."""

    def __init__(self, name: str, holder: Holder | None) -> None:
        super().__init__(name)
        self.name = name
        self.holder = holder


class NamedLocks(Protocol):
    def hold(self, name: str, holder: Holder, wait: float) -> contextlib.AbstractContextManager[None]:
        """Hold ``name`` for the ``with`` block.

        Raises :class:`LockBusy` at once if the lock is held by a long operation or
        ``wait`` is 0, else after waiting ``wait`` seconds for it.
        """
        ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL's ``bigint``)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"moorage-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


def locks_for(engine: Engine, data_dir: Path) -> NamedLocks:
    """Advisory locks on PostgreSQL state, lock files in ``data_dir`` on SQLite state."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLocks(engine)
    return FileLocks(data_dir / "locks")


class AdvisoryLocks:
    """``pg_advisory_lock`` on a dedicated connection per held lock."""

    def __init__(self, engine: Engine) -> None:
        # Unpooled: closing the connection is what guarantees the lock is gone.
        # Autocommit: the connection idles outside a transaction while the lock is held.
        self.engine = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    @contextlib.contextmanager
    def hold(self, name: str, holder: Holder, wait: float) -> Iterator[None]:
        key = lock_key(name)
        with self.engine.connect() as conn:
            _keep_alive(conn)
            label = holder.encode().encode("ascii", "replace")[:_APPLICATION_NAME_BYTES].decode()
            conn.execute(text("SELECT set_config('application_name', :v, false)"), {"v": label})
            if not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
                current = self._holder(conn, key)
                if wait <= 0 or (current is not None and current.long):
                    raise LockBusy(name, current)
                self._wait(conn, name, key, wait)
            try:
                yield
            finally:
                with contextlib.suppress(OperationalError):  # closing releases it anyway
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def _wait(self, conn: Connection, name: str, key: int, wait: float) -> None:
        conn.execute(text(f"SET lock_timeout = {max(1, int(wait * 1000))}"))
        try:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            raise LockBusy(name, self._holder(conn, key)) from None
        conn.execute(text("SET lock_timeout = 0"))

    @staticmethod
    def _holder(conn: Connection, key: int) -> Holder | None:
        raw = conn.scalar(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND l.classid::bigint = :hi AND l.objid::bigint = :lo"
            ),
            {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
        )
        return Holder.decode(raw)


def _keep_alive(conn: Connection) -> None:
    """Let the server notice a dead holder's machine in about a minute, and never time out.

    A killed process closes its socket at once; a machine that vanishes sends nothing, and
    without keepalives its lock would last for the kernel's two hours. An idle-session
    limit of the server (PostgreSQL 14+) must not end a lock held through a long build.
    """
    conn.execute(text("SET tcp_keepalives_idle = 30"))
    conn.execute(text("SET tcp_keepalives_interval = 10"))
    conn.execute(text("SET tcp_keepalives_count = 3"))
    if (conn.dialect.server_version_info or (0,)) >= (14,):
        conn.execute(text("SET idle_session_timeout = 0"))


class FileLocks:
    """``flock`` on ``<dir>/<key>.lock``; the file also says who holds it.

    Files are never deleted: removing a lock file while another process waits on it
    would let a third take a "lock" on a new file beside it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def hold(self, name: str, holder: Holder, wait: float) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"{lock_key(name) & 0xFFFFFFFFFFFFFFFF:016x}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        try:
            self._acquire(fd, name, path, wait)
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode().encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire(self, fd: int, name: str, path: Path, wait: float) -> None:
        deadline = time.monotonic() + wait
        first = True
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if first:
                first = False
                current = _read_holder(path)
                if wait <= 0 or (current is not None and current.long):
                    raise LockBusy(name, current)
            if time.monotonic() >= deadline:
                raise LockBusy(name, _read_holder(path))
            time.sleep(_POLL_SECONDS)


def _read_holder(path: Path) -> Holder | None:
    try:
        return Holder.decode(path.read_text(errors="replace"))
    except OSError:
        return None
