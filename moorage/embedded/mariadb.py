"""Moorage's own MariaDB server (``mariadbd``), initialised and started from the system's binaries.

Why: the ``mysql`` provider creates a database per instance and a user per binding on a
server, and on one machine with nothing configured Moorage runs that server itself, as it
does PostgreSQL. It runs under ``mariadbd-safe`` (MariaDB's own supervisor, which starts
mariadbd again when it crashes), in its own session, so it outlives a Moorage restart; the
next :meth:`EmbeddedMariaDB.start` finds it through its pidfile and reuses it, or starts
it again on the port it had last time (a new free one only if that is taken).

Layout under ``<data_dir>/mariadb``::

    data/             the datadir (mariadb-install-db), the service user's
    run/              the service user's: mariadbd.pid, mysqld.sock, error.log
    my.cnf            rewritten on every start (port, paths, SSL)
    init.sql          the admin account, run by mariadbd at every (re)start
    server.crt/.key   the self-signed certificate (SSL is on; clients choose)
    admin-password    0600, the generated password of the ``moorage`` admin account
    port, .lock

The folder and the files directly in it are root's (0711; what the server reads is 0640
to the service user's group), so code running as the service user cannot put a link
where root writes; root touches what is in ``data/`` and ``run/`` without following links
(:mod:`moorage.embedded.files`).

TCP listens on 127.0.0.1 only; ``LOAD DATA LOCAL`` is off. ``mariadb-install-db`` makes
the ``root`` account usable only through the unix socket (in the 0700 ``run/``); the
``moorage`` admin account is converged on every (re)start by the ``init-file``, because
account statements cannot run in install-db's bootstrap mode; that file holds only the
password's hash, the password itself is only in ``admin-password``. When Moorage runs as
root the server runs as the unprivileged service user.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import pymysql

from moorage.embedded.certificates import write_self_signed
from moorage.embedded.files import server_folder, write_for_server
from moorage.embedded.ports import LOOPBACK
from moorage.embedded.processes import run_as
from moorage.embedded.server import MAX_SOCKET_PATH, EmbeddedServer
from moorage.embedded.users import DEFAULT_SERVICE_USER, ServiceUser
from moorage.errors import ConfigurationError, ProviderError

log = logging.getLogger(__name__)

ADMIN_USER = "moorage"


def find_binary(name: str) -> Path:
    """``mariadbd`` or ``mariadb-install-db``: PATH first, then Debian's locations."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        raise ConfigurationError(
            f"MariaDB's {name} was not found; install it (Debian: apt-get install mariadb-server) "
            "or set MOORAGE_SERVICES_MYSQL_ADMIN_URL to a server"
        )
    return Path(found)


class EmbeddedMariaDB(EmbeddedServer):
    """One mariadbd in ``<data_dir>/mariadb``: ``start()``, ``stop()``, ``is_running()``.

    ``durable=False`` relaxes flushing and shrinks the buffer pool: for tests only. Its
    :meth:`stop` is SIGTERM: a clean InnoDB shutdown, sessions are closed.
    """

    title = "embedded MariaDB"
    product = "MariaDB"
    process_name = "mariadbd"
    stop_timeout = 60.0

    def __init__(
        self,
        data_dir: Path,
        *,
        user_name: str = DEFAULT_SERVICE_USER,
        durable: bool = True,
        max_connections: int = 300,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            Path(data_dir).absolute() / "mariadb", user_name=user_name, start_timeout=start_timeout
        )
        self.datadir = self.base / "data"
        self.config_file = self.base / "my.cnf"
        self.init_file = self.base / "init.sql"
        self.run_dir = self.server_dir = self.base / "run"
        self.pid_file = self.run_dir / "mariadbd.pid"
        self.log_file = self.run_dir / "error.log"
        self.socket = self.run_dir / "mysqld.sock"
        self.durable = durable
        self.max_connections = max_connections

    @property
    def admin_url(self) -> str:
        """``mysql://moorage:<password>@127.0.0.1:<port>/``."""
        return f"mysql://{ADMIN_USER}:{self._password()}@{LOOPBACK}:{self.port}/"

    def start(self) -> str:
        """Initialise if needed, start unless already running, wait until ready; the admin URL."""
        with self._starting() as user:
            self._ensure_password()
            if not (self.datadir / "mysql").is_dir():
                self._install(user)
            self._start_unless_running(user)
        return self.admin_url

    # -- steps -----------------------------------------------------------------------

    def _install(self, user: ServiceUser) -> None:
        """mariadb-install-db into a staging folder, then move it into place (all or nothing)."""
        staging = self.base / "data.install"
        shutil.rmtree(staging, ignore_errors=True)
        server_folder(staging, user)
        argv = [
            find_binary("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={staging}",
            "--auth-root-authentication-method=socket",
            f"--auth-root-socket-user={user.name}",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        proc = run_as(user, argv, cwd=self.base, timeout=self.start_timeout + 60)
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise ProviderError(
                f"mariadb-install-db failed in {staging}: {(proc.stdout + proc.stderr).strip()[-2000:]}"
            )
        write_self_signed(self.base / "server.crt", self.base / "server.key", reader=user)
        os.replace(staging, self.datadir)
        log.info("initialised embedded MariaDB", extra={"datadir": str(self.datadir)})

    def _start(self, user: ServiceUser) -> None:
        self._write_init_file(user)
        port = self._run(user)
        log.info("embedded MariaDB started", extra={"port": port})

    def _launch(self, port: int, user: ServiceUser) -> str | None:
        """``mariadbd-safe``, MariaDB's own supervisor: it restarts a mariadbd that crashed."""
        self._write_config(port, user)
        argv = [find_binary("mariadbd-safe"), f"--defaults-file={self.config_file}", "--skip-syslog"]
        # mariadbd appends to the log itself (log-error), so it is the service user's
        return self._spawn(argv, port, user=user, cwd=self.base, log_owner=user)

    def _write_init_file(self, user: ServiceUser) -> None:
        """The admin account, converged on every (re)start; one statement per line, as mariadbd wants.

        It holds the password's ``mysql_native_password`` hash (``*`` + SHA1(SHA1(password))),
        not the password, so it can stay for the restarts ``mariadbd-safe`` makes.
        """
        account = f"'{ADMIN_USER}'@'{LOOPBACK}'"
        digest = "*" + hashlib.sha1(hashlib.sha1(self._password().encode()).digest()).hexdigest().upper()
        statements = [
            f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY PASSWORD '{digest}';",
            f"ALTER USER {account} IDENTIFIED BY PASSWORD '{digest}';",
            f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;",
        ]
        write_for_server(self.init_file, ("\n".join(statements) + "\n").encode(), user)

    def _write_config(self, port: int, user: ServiceUser) -> None:
        lines = [
            "[mariadbd]",
            f"datadir = {self.datadir}",
            f"bind-address = {LOOPBACK}",
            f"port = {port}",
            f"pid-file = {self.pid_file}",
            f"log-error = {self.log_file}",
            f"init-file = {self.init_file}",
            f"ssl-cert = {self.base / 'server.crt'}",
            f"ssl-key = {self.base / 'server.key'}",
            "skip-name-resolve",
            "local-infile = 0",
            f"max_connections = {int(self.max_connections)}",
            "character-set-server = utf8mb4",
            "collation-server = utf8mb4_unicode_ci",
            # Sized for many small databases on one machine, not one big one (idle RSS
            # 106 MB with the defaults, 75 MB so): the caches grow only as far as these.
            "innodb_buffer_pool_size = 64M" if self.durable else "innodb_buffer_pool_size = 16M",
            "aria_pagecache_buffer_size = 8M",
            "key_buffer_size = 8M",
        ]
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise ConfigurationError(
                f"the data dir path is too long for MariaDB's unix socket ({self.socket}); choose a shorter one"
            )
        lines.append(f"socket = {self.socket}")
        if not self.durable:
            lines += [
                "innodb_flush_log_at_trx_commit = 2",
                "innodb_doublewrite = 0",
                "sync_binlog = 0",
            ]
        write_for_server(self.config_file, ("\n".join(lines) + "\n").encode(), user)

    # -- probes ----------------------------------------------------------------------

    def _accepts(self, port: int) -> bool:
        try:
            conn = pymysql.connect(
                host=LOOPBACK, port=port, user=ADMIN_USER, password=self._password(), connect_timeout=2
            )
        except pymysql.MySQLError:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        except pymysql.MySQLError:
            return False
        finally:
            conn.close()
