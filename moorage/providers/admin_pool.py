"""Idle admin connections a provider keeps for its next call, by server and database.

Why: a bind or unbind is a handful of statements, but a new admin connection costs a TCP
(often TLS) handshake and a SCRAM or native-password login, which is most of the call.
So a connection that served a call without error waits here for the next one; one that
failed (or served a call that failed) is closed, since its session state is unknown.
The providers of the shared PostgreSQL and MySQL servers keep one pool for their one
server; ``k8s-postgresql`` keys its pool by (instance, database) and empties an
instance's part before deleting it.

The pool is driver-agnostic: it only needs ``close()`` and a test of whether a
connection is still usable (psycopg's ``closed``/``broken``, PyMySQL's ``open``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager, suppress
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


Conn = TypeVar("Conn", bound=Closable)


class AdminPool(Generic[Conn]):
    """At most ``per_key`` idle connections for each of at most ``keys`` keys; thread-safe."""

    def __init__(self, usable: Callable[[Conn], bool], *, per_key: int, keys: int = 1) -> None:
        self._usable = usable
        self._per_key = per_key
        self._keys = keys
        self._idle: dict[Hashable, list[Conn]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def lend(self, connect: Callable[[], Conn], key: Hashable = None) -> Iterator[Conn]:
        """An idle connection for ``key``, else ``connect()``; kept after success, closed after an error."""
        conn = self._take(key) or connect()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        self._keep(key, conn)

    def forget(self, matches: Callable[[Hashable], bool]) -> None:
        """Close the idle connections of the keys that match (a server about to be deleted)."""
        with self._lock:
            doomed = [conn for key in [k for k in self._idle if matches(k)] for conn in self._idle.pop(key)]
        for conn in doomed:
            conn.close()

    def close(self) -> None:
        """Close every idle connection (the process stops)."""
        self.forget(lambda _key: True)

    def _take(self, key: Hashable) -> Conn | None:
        dead: list[Conn] = []
        with self._lock:
            conns = self._idle.get(key) or []
            found = None
            while conns and found is None:
                conn = conns.pop()
                if self._usable(conn):
                    found = conn
                else:
                    dead.append(conn)
            if not conns:
                self._idle.pop(key, None)
        for conn in dead:  # broken already: closing frees its socket, or says it is closed
            with suppress(Exception):
                conn.close()
        return found

    def _keep(self, key: Hashable, conn: Conn) -> None:
        with self._lock:
            conns = self._idle.get(key)
            if conns is None and len(self._idle) < self._keys:
                conns = self._idle[key] = []
            if conns is not None and len(conns) < self._per_key:
                conns.append(conn)
                return
        conn.close()
