"""What every server Moorage runs from the system's binaries shares: its folder, its files, its process.

Why a base class: the embedded PostgreSQL, MariaDB and Redis and each dedicated Redis
instance live the same way, and the rules that keep them safe are easy to get subtly
wrong four times. The server's folder is root's (0711) and holds the generated admin
password (0600), the port of the last start and the ``.lock`` that serialises starts
between processes; the service user owns only the subfolder its server writes, where
root never follows a link (:mod:`moorage.embedded.files`). A start goes back to the
recorded port, moving to a fresh one only when another process took it before the
server could bind it; a server is running when the pid in its pidfile is alive (and,
unless said otherwise, lets the admin account in); a stop is SIGTERM to that pid.

A subclass says what is its own: its folder's other files, how to launch its binary on a
port (:meth:`EmbeddedServer._launch`, usually with :meth:`EmbeddedServer._spawn`) and how
to ask it whether it is ready (:meth:`EmbeddedServer._accepts`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import ClassVar

from moorage.embedded.files import open_append, read_text, root_folder, server_folder, write_private
from moorage.embedded.ports import LOOPBACK, free_port, port_is_free
from moorage.embedded.processes import pid_alive, read_pidfile, start_detached, tail, wait_for
from moorage.embedded.users import ServiceUser, check_reachable, service_user
from moorage.errors import ProviderError

log = logging.getLogger(__name__)

#: Longest unix socket path the kernel accepts (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 107
#: Starts tried in a row; each retry is on a fresh port, when another process took the last one.
_ATTEMPTS = 3


class EmbeddedServer(ABC):
    """One server in its own folder ``base``: the lifecycle; the subclass fills in the server."""

    #: How messages name it ("the embedded Redis in /var/lib/moorage/redis has never been started").
    title: ClassVar[str]
    #: The product, in "port 5432 was taken before PostgreSQL could bind it".
    product: ClassVar[str]
    #: The process that writes the pidfile, in "mariadbd did not start".
    process_name: ClassVar[str]
    password_name: ClassVar[str] = "admin-password"
    #: What an error says of the server when its password file is missing.
    missing_password: ClassVar[str] = "has never been started"
    stop_timeout: ClassVar[float] = 30.0

    #: The folder the server writes (the service user's), its pidfile and where its output goes.
    server_dir: Path
    pid_file: Path
    log_file: Path

    def __init__(self, base: Path, *, user_name: str, start_timeout: float) -> None:
        self.base = Path(base).absolute()
        self.password_file = self.base / self.password_name
        self.port_file = self.base / "port"
        self._user_name = user_name
        self.start_timeout = start_timeout
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        """The port the server runs on (or ran on last)."""
        recorded = self._recorded_port()
        if recorded is None:
            raise ProviderError(f"the {self.title} in {self.base} has never been started")
        return recorded

    def is_running(self) -> bool:
        """True when the server's process is alive and lets the admin account in."""
        if self._live_pid() is None:
            return False
        try:
            return self._accepts(self.port)
        except ProviderError:
            return False

    def stop(self) -> None:
        """SIGTERM (the server shuts down cleanly) and wait until the process is gone."""
        pid = self._live_pid()
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            wait_for(
                lambda: not pid_alive(pid),
                timeout=self.stop_timeout,
                what=f"{self.process_name} (pid {pid}) to exit",
            )
        if self._child is not None:  # reap it: a child that exited stays a zombie until waited for
            with suppress(subprocess.TimeoutExpired):
                self._child.wait(timeout=5)
            self._child = None

    # -- what a subclass provides ------------------------------------------------------

    @abstractmethod
    def _start(self, user: ServiceUser) -> None:
        """Start the server (it is not running; ``.lock`` is held)."""

    @abstractmethod
    def _launch(self, port: int, user: ServiceUser) -> str | None:
        """Start the server on ``port`` and wait until it is ready; None, or why it did not start."""

    @abstractmethod
    def _accepts(self, port: int) -> bool:
        """True when the server on ``port`` lets the admin account in."""

    def _is_ours(self, pid: int) -> bool:
        """True when ``pid`` (read from the pidfile) is this server's live process."""
        return pid_alive(pid)

    # -- steps -------------------------------------------------------------------------

    @contextmanager
    def _starting(self) -> Iterator[ServiceUser]:
        """The service user, with the folders prepared and ``.lock`` held: the frame of a start."""
        user = service_user(self._user_name)
        self._prepare(user)
        with self._lock():
            yield user

    def _prepare(self, user: ServiceUser) -> None:
        """The folder (root's, that the service user may only traverse) and the one the server writes."""
        check_reachable(self.base, user)  # before creating anything
        root_folder(self.base)
        server_folder(self.server_dir, user)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One start (or change) at a time among all processes sharing the data dir."""
        fd = open_append(self.base / ".lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _ensure_password(self) -> None:
        if not self.password_file.exists():
            write_private(self.password_file, secrets.token_urlsafe(32).encode())

    def _start_unless_running(self, user: ServiceUser) -> None:
        if self.is_running():
            log.info("%s already running", self.title, extra={"port": self.port})
        else:
            self._start(user)

    def _run(self, user: ServiceUser, *, may_move: bool = True) -> int:
        """:meth:`_launch` on the recorded port (or a fresh one) until it runs; record the port and return it.

        ``may_move``: a recorded port that is taken now, or one that is lost between
        choosing and binding it, is given up for a fresh one; without it the server
        keeps its port (clients were given it) and a start on a taken port fails.
        """
        port = self._recorded_port()
        if port is None or (may_move and not port_is_free(port)):
            port = free_port()
        for attempt in range(1, _ATTEMPTS + 1):
            failure = self._launch(port, user)
            if failure is None:
                break
            if attempt == _ATTEMPTS or not may_move or port_is_free(port):
                raise ProviderError(f"{failure}; end of {self.log_file}:\n{tail(self.log_file)}")
            log.warning("port %s was taken before %s could bind it; trying another", port, self.product)
            port = free_port()
        write_private(self.port_file, f"{port}\n".encode())
        return port

    def _spawn(
        self,
        argv: Sequence[str | os.PathLike[str]],
        port: int,
        *,
        user: ServiceUser,
        cwd: Path,
        log_owner: ServiceUser | None = None,
    ) -> str | None:
        """Start ``argv`` detached and wait until it answers on ``port``; None, or why it did not start.

        ``log_owner``: the log is that user's, for a server that also writes it itself.
        """
        self.pid_file.unlink(missing_ok=True)
        child = start_detached(user, argv, cwd=cwd, log=self.log_file, log_owner=log_owner)
        self._keep_child(child)
        wait_for(
            lambda: child.poll() is not None or self._accepts(port),
            timeout=self.start_timeout,
            what=f"{self.process_name} on port {port}",
        )
        if child.poll() is None:
            return None
        self._child = None
        return f"{self.process_name} did not start"

    def _keep_child(self, child: subprocess.Popen[bytes]) -> None:
        """Hold on to the server this object started, to reap it when :meth:`stop` stops it."""
        self._child = child

    # -- probes ------------------------------------------------------------------------

    def _password(self) -> str:
        try:
            return read_text(self.password_file).strip()
        except FileNotFoundError:
            raise ProviderError(f"the {self.title} in {self.base} {self.missing_password}") from None

    def _recorded_port(self) -> int | None:
        """The port of the last start (None before the first; a port file that is not a file counts as none)."""
        try:
            return int(read_text(self.port_file).strip())
        except (OSError, ValueError, ProviderError):
            return None

    def _live_pid(self) -> int | None:
        """The pid in the pidfile while that process lives (a pidfile outlives a crash)."""
        pid = read_pidfile(self.pid_file)
        return pid if pid is not None and self._is_ours(pid) else None
