"""Moorage's own PostgreSQL server, started from the system's binaries in the data dir.

Why: the ``postgres`` provider needs a server to create databases and roles on, and on
one machine with nothing configured Moorage runs it itself. The server is a normal
detached postmaster (started with ``pg_ctl``), so it outlives a Moorage restart: the next
:meth:`EmbeddedPostgres.start` finds it through ``postmaster.pid`` and reuses it, or
starts it again on the port it had last time (a new free one only if that is taken).

Layout under ``<data_dir>/postgres``::

    data/                 PGDATA (initdb), with moorage.conf, server.crt, server.key
    run/                  the unix socket and server.log (pg_ctl writes it as the server's user)
    superuser-password    0600, the generated password of the ``moorage`` superuser
    port                  the port of the last start

The folder and the files directly in it are root's (0711); the service user owns data/
and run/, and root writes in there without following links (:mod:`moorage.embedded.files`).

TCP listens on 127.0.0.1 only, every login uses scram-sha-256, SSL is on with a
self-signed certificate. When Moorage runs as root the server runs as the unprivileged
service user (PostgreSQL refuses root anyway).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

import psycopg

from moorage.embedded.certificates import write_self_signed
from moorage.embedded.files import open_append, read_text, server_folder, write_for_server, write_private
from moorage.embedded.ports import LOOPBACK
from moorage.embedded.processes import read_pidfile, run_as, wait_for
from moorage.embedded.server import MAX_SOCKET_PATH, EmbeddedServer
from moorage.embedded.users import DEFAULT_SERVICE_USER, ServiceUser, service_user
from moorage.errors import ConfigurationError, ProviderError

log = logging.getLogger(__name__)

SUPERUSER = "moorage"


def find_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: PATH first, then the newest Debian layout."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    raise ConfigurationError(
        "PostgreSQL's server binaries (initdb, pg_ctl) were not found; install them "
        "(Debian: apt-get install postgresql) or set MOORAGE_SERVICES_POSTGRES_ADMIN_URL to a server"
    )


class EmbeddedPostgres(EmbeddedServer):
    """One PostgreSQL server in ``<data_dir>/postgres``: ``start()``, ``stop()``, ``is_running()``.

    ``durable=False`` turns off fsync and friends: for tests and throwaway data only.
    """

    title = "embedded PostgreSQL"
    product = "PostgreSQL"
    process_name = "postgres"
    password_name = "superuser-password"

    def __init__(
        self,
        data_dir: Path,
        *,
        bin_dir: Path | None = None,
        user_name: str = DEFAULT_SERVICE_USER,
        durable: bool = True,
        max_connections: int = 200,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            Path(data_dir).absolute() / "postgres", user_name=user_name, start_timeout=start_timeout
        )
        self.pgdata = self.base / "data"
        self.socket_dir = self.server_dir = self.base / "run"
        self.pid_file = self.pgdata / "postmaster.pid"
        self.log_file = self.base / "run" / "server.log"
        self._bin_dir = bin_dir
        self.durable = durable
        self.max_connections = max_connections

    # -- public API ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server runs on (or ran on last)."""
        running = self._running_port()
        return running if running is not None else super().port

    @property
    def admin_url(self) -> str:
        """``postgresql://moorage:<password>@127.0.0.1:<port>/postgres``."""
        return f"postgresql://{SUPERUSER}:{self._password()}@{LOOPBACK}:{self.port}/postgres"

    def start(self) -> str:
        """Initialise if needed, start unless already running, wait until ready; the admin URL."""
        with self._starting() as user:
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(user)
            self._start_unless_running(user)
        return self.admin_url

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are disconnected) and wait for it to exit."""
        if read_pidfile(self.pid_file) is None:
            return
        user = service_user(self._user_name)
        proc = run_as(
            user,
            [self.bin_dir / "pg_ctl", "stop", "-D", self.pgdata, "-m", "fast", "-w", "-t", "60"],
            cwd=self.base,
        )
        if proc.returncode != 0 and self.is_running():
            raise ProviderError(f"could not stop the embedded PostgreSQL: {proc.stderr.strip()}")

    def is_running(self) -> bool:
        """True when our postmaster is alive and accepts connections."""
        port = self._running_port()
        return port is not None and self._accepts(port)

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return self._bin_dir

    # -- steps -----------------------------------------------------------------------

    def _initdb(self, user: ServiceUser) -> None:
        password = secrets.token_urlsafe(32)
        write_private(self.password_file, password.encode())
        staging = self.base / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        server_folder(staging, user)  # initdb fills it; it cannot create folders in root's base
        pwfile = self.base / ".initdb-password"
        write_for_server(pwfile, password.encode(), user)
        argv = [
            self.bin_dir / "initdb",
            "-D",
            staging,
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if not self.durable:
            argv.append("--no-sync")
        try:
            proc = run_as(user, argv, cwd=self.base)
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise ProviderError(f"initdb failed in {staging}: {(proc.stderr or proc.stdout).strip()[-2000:]}")
        write_self_signed(staging / "server.crt", staging / "server.key")
        conf = open_append(staging / "postgresql.conf")
        try:
            os.write(
                conf,
                b"\n# Moorage's settings (rewritten on every start)\ninclude_if_exists = 'moorage.conf'\n",
            )
        finally:
            os.close(conf)
        user.chown_tree(staging)
        os.replace(staging, self.pgdata)
        log.info("initialised embedded PostgreSQL", extra={"pgdata": str(self.pgdata)})

    def _start(self, user: ServiceUser) -> None:
        port = self._run(user)
        wait_for(lambda: self._accepts(port), timeout=self.start_timeout, what=f"PostgreSQL on port {port}")
        log.info("embedded PostgreSQL started", extra={"port": port})
        self._harden()

    def _launch(self, port: int, user: ServiceUser) -> str | None:
        """``pg_ctl start -w``: it returns when the server is up, or failed."""
        self._write_config(port)
        proc = run_as(
            user,
            [
                self.bin_dir / "pg_ctl",
                "start",
                "-D",
                self.pgdata,
                "-l",
                self.log_file,
                "-w",
                "-t",
                str(int(self.start_timeout)),
            ],
            cwd=self.base,
            timeout=self.start_timeout + 10,
        )
        if proc.returncode != 0:
            return f"the embedded PostgreSQL did not start (pg_ctl: {proc.stderr.strip()})"
        return None

    def _write_config(self, port: int) -> None:
        socket_dirs = str(self.socket_dir)
        if len(f"{socket_dirs}/.s.PGSQL.{port}") > MAX_SOCKET_PATH:
            log.warning("data dir path too long for a unix socket; PostgreSQL listens on TCP only")
            socket_dirs = ""
        lines = [
            f"listen_addresses = '{LOOPBACK}'",
            f"port = {port}",
            f"unix_socket_directories = '{socket_dirs}'",
            "ssl = on",
            "ssl_cert_file = 'server.crt'",
            "ssl_key_file = 'server.key'",
            "password_encryption = 'scram-sha-256'",
            f"max_connections = {int(self.max_connections)}",
            "log_line_prefix = '%m [%p] %q%u@%d '",
        ]
        if not self.durable:
            lines += [
                "fsync = off",
                "synchronous_commit = off",
                "full_page_writes = off",
                "shared_buffers = 32MB",
            ]
        st = os.lstat(self.pgdata)
        write_private(
            self.pgdata / "moorage.conf", ("\n".join(lines) + "\n").encode(), uid=st.st_uid, gid=st.st_gid
        )

    def _harden(self) -> None:
        """Only the roles Moorage grants may connect to a database: not to ``postgres``."""
        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
        except psycopg.Error as exc:
            raise ProviderError(f"the embedded PostgreSQL started but refused its superuser: {exc}") from None

    # -- probes ----------------------------------------------------------------------

    def _running_port(self) -> int | None:
        """The port from postmaster.pid when that postmaster is alive."""
        if self._live_pid() is None:
            return None
        try:
            return int(read_text(self.pid_file).splitlines()[3])
        except (OSError, IndexError, ValueError, ProviderError):
            return None

    def _accepts(self, port: int) -> bool:
        try:
            with psycopg.connect(
                host=LOOPBACK,
                port=port,
                user=SUPERUSER,
                password=self._password(),
                dbname="postgres",
                connect_timeout=2,
                sslmode="disable",
            ) as conn:
                conn.execute("SELECT 1")
                return True
        except psycopg.Error:
            return False
