"""Moorage's own redis-server, started from the system's binary in the data dir.

Why: the ``redis`` provider creates one ACL user per binding on a server, and on one
machine with nothing configured Moorage runs that server itself. The process is started
in its own session, so it outlives a Moorage restart; the next :meth:`EmbeddedRedis.start`
finds it through its pidfile and reuses it, or starts it again on its previous port.

Layout under ``<data_dir>/redis``::

    redis.conf        rewritten on every start (port, paths); 0640 to the service group
    admin-password    0600, the generated password of the ``moorage`` ACL user
    port, redis.log, .lock
    data/             the service user's: append-only file, users.acl (the aclfile: ACL
                      SAVE persists binding users here), redis.pid

The folder and the files directly in it are root's (0711), so the server (run as the
service user) cannot plant links where root writes (:mod:`moorage.embedded.files`).

The ``default`` user is switched off; the admin user is stored as a SHA-256 hash in the
aclfile, so the password exists in clear only in ``admin-password``.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from moorage.embedded.files import (
    open_append,
    read_first,
    read_text,
    root_folder,
    server_folder,
    write_for_server,
    write_owned_by,
    write_private,
)
from moorage.embedded.ports import LOOPBACK, free_port, port_is_free
from moorage.embedded.processes import clean_env, pid_alive, read_pidfile, tail, wait_for
from moorage.embedded.users import DEFAULT_SERVICE_USER, ServiceUser, check_reachable, service_user
from moorage.errors import ConfigurationError, ProviderError

log = logging.getLogger(__name__)

ADMIN_USER = "moorage"


class EmbeddedRedis:
    """One redis-server in ``<data_dir>/redis``: ``start()``, ``stop()``, ``is_running()``.

    ``durable=False`` turns off RDB snapshots and fsync of the append-only file (tests).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: Path | None = None,
        user_name: str = DEFAULT_SERVICE_USER,
        durable: bool = True,
        start_timeout: float = 30.0,
    ) -> None:
        self.base = Path(data_dir).absolute() / "redis"
        self.config_file = self.base / "redis.conf"
        self.data = self.base / "data"
        self.acl_file = self.data / "users.acl"
        self.password_file = self.base / "admin-password"
        self.port_file = self.base / "port"
        self.pid_file = self.data / "redis.pid"
        self.log_file = self.base / "redis.log"
        self._binary = binary
        self._user_name = user_name
        self.durable = durable
        self.start_timeout = start_timeout
        self._child: subprocess.Popen[bytes] | None = None

    # -- public API ------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        try:
            return int(read_text(self.port_file).strip())
        except (OSError, ValueError):
            raise ProviderError(f"the embedded Redis in {self.base} has never been started") from None

    @property
    def admin_url(self) -> str:
        """``redis://moorage:<password>@127.0.0.1:<port>/0``."""
        return f"redis://{ADMIN_USER}:{self._password()}@{LOOPBACK}:{self.port}/0"

    def start(self) -> str:
        """Prepare the folder if needed, start unless already running, wait for PING; the admin URL."""
        user = service_user(self._user_name)
        with self._lock(user):
            if not self.password_file.exists():
                write_private(self.password_file, secrets.token_urlsafe(32).encode())
            if self.is_running():
                log.info("embedded Redis already running", extra={"port": self.port})
                return self.admin_url
            self._start(user)
            return self.admin_url

    def stop(self) -> None:
        """SIGTERM (Redis flushes its append-only file) and wait until the process is gone."""
        pid = read_pidfile(self.pid_file)
        if pid is None or not pid_alive(pid):
            self._reap()
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_for(lambda: not pid_alive(pid), timeout=30, what=f"redis-server (pid {pid}) to exit")
        self._reap()

    def is_running(self) -> bool:
        """True when our redis-server is alive and answers PING as the admin user."""
        pid = read_pidfile(self.pid_file)
        if pid is None or not pid_alive(pid):
            return False
        try:
            return self._ping(self.port)
        except ProviderError:
            return False

    @property
    def binary(self) -> Path:
        if self._binary is None:
            found = shutil.which("redis-server")
            if not found:
                raise ConfigurationError(
                    "redis-server was not found; install it (Debian: apt-get install redis-server) "
                    "or set MOORAGE_SERVICES_REDIS_ADMIN_URL to a server"
                )
            self._binary = Path(found)
        return self._binary

    # -- steps -----------------------------------------------------------------------

    @contextmanager
    def _lock(self, user: ServiceUser) -> Iterator[None]:
        check_reachable(self.base, user)  # before creating anything
        root_folder(self.base)
        server_folder(self.data, user)
        fd = open_append(self.base / ".lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _start(self, user: ServiceUser) -> None:
        self._write_acl_file(user)
        try:
            recorded: int | None = self.port
        except ProviderError:
            recorded = None
        port = recorded if recorded is not None and port_is_free(recorded) else free_port()
        for attempt in range(3):
            self._write_config(port, user)
            self.pid_file.unlink(missing_ok=True)
            log_fd = open_append(self.log_file)
            try:
                self._child = subprocess.Popen(
                    [str(self.binary), str(self.config_file)],
                    cwd=self.data,
                    env=clean_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=log_fd,
                    start_new_session=True,
                    **user.popen_kwargs(),  # type: ignore[arg-type]
                )
            finally:
                os.close(log_fd)
            child = self._child
            wait_for(
                lambda child=child, port=port: child.poll() is not None or self._ping(port, quiet=True),
                timeout=self.start_timeout,
                what=f"redis-server on port {port}",
            )
            if child.poll() is None:
                break
            self._child = None
            if attempt < 2 and not port_is_free(port):
                log.warning("port %s was taken before Redis could bind it; trying another", port)
                port = free_port()
                continue
            raise ProviderError(f"redis-server did not start; end of {self.log_file}:\n{tail(self.log_file)}")
        write_private(self.port_file, f"{port}\n".encode())
        log.info("embedded Redis started", extra={"port": port})

    def _write_config(self, port: int, user: ServiceUser) -> None:
        lines = [
            f"bind {LOOPBACK}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            f'pidfile "{self.pid_file}"',
            'logfile ""',
            f'dir "{self.data}"',
            f'aclfile "{self.acl_file}"',
            "appendonly yes",
            "appendfsync everysec" if self.durable else "appendfsync no",
        ]
        if not self.durable:
            lines.append('save ""')
        write_for_server(self.config_file, ("\n".join(lines) + "\n").encode(), user)

    def _write_acl_file(self, user: ServiceUser) -> None:
        """Keep the users ACL SAVE wrote; (re)write the ``default`` and admin lines."""
        digest = hashlib.sha256(self._password().encode()).hexdigest()
        kept: list[str] = []
        for line in read_first(self.acl_file, self.base / "users.acl").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "user" and words[1] in ("default", ADMIN_USER):
                continue
            if line.strip():
                kept.append(line)
        lines = [
            "user default off resetpass resetkeys resetchannels -@all",
            f"user {ADMIN_USER} on #{digest} ~* &* +@all",
            *kept,
        ]
        write_owned_by(self.acl_file, ("\n".join(lines) + "\n").encode(), user)
        (self.base / "users.acl").unlink(missing_ok=True)  # where versions before 2026-12 kept it

    def _reap(self) -> None:
        if self._child is not None:
            try:
                self._child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._child = None

    # -- probes ----------------------------------------------------------------------

    def _password(self) -> str:
        try:
            return read_text(self.password_file).strip()
        except FileNotFoundError:
            raise ProviderError(f"the embedded Redis in {self.base} has never been started") from None

    def _ping(self, port: int, quiet: bool = False) -> bool:
        client = redis.Redis(
            host=LOOPBACK,
            port=port,
            username=ADMIN_USER,
            password=self._password(),
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),  # we poll ourselves; redis-py's backoff would slow it
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            if quiet:
                return False
            raise ProviderError(f"the embedded Redis on port {port} does not answer") from None
        finally:
            client.close()
