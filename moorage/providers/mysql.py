"""The ``mysql`` provider: a database per service instance on a MariaDB (or MySQL) server.

Why: the MySQL offering (``catalog/mysql.yaml``), for the many apps written for MySQL
(Django's and Rails' samples, WordPress-style PHP). The server is the one at
``settings.services.mysql_admin_url``, Moorage's embedded MariaDB by default. Each
instance gets a database, each binding a user with privileges on that database only
(the scheme is in :mod:`moorage.providers.mysql_accounts`). Names derive from the ids by
hashing, so every call finds what an earlier call made.

Plan ``config``: ``connection_limit`` (the most connections of one binding). Instance
parameters: ``connection_limit`` (at most the plan's) and ``collation`` (of the database's
default ``utf8mb4`` character set).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import pymysql
from pymysql.cursors import Cursor

from moorage.catalog.provider import (
    BindingContext,
    BindResult,
    Endpoint,
    InstanceContext,
    Provider,
    ProvisionResult,
)
from moorage.errors import ConfigurationError, InvalidParametersError, PermanentError, ProviderError
from moorage.providers import mysql_accounts
from moorage.settings import Settings

log = logging.getLogger(__name__)

CHARSET = "utf8mb4"
#: Collations of utf8mb4 an instance may choose (the offering's schema lists the same).
ALLOWED_COLLATIONS = frozenset(
    {"utf8mb4_unicode_ci", "utf8mb4_general_ci", "utf8mb4_bin", "utf8mb4_unicode_520_ci"}
)
DEFAULT_COLLATION = "utf8mb4_unicode_ci"
DEFAULT_PORT = 3306


def short_hash(value: str, length: int) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def database_name(instance_id: str) -> str:
    """The database of an instance: ``moorage_<16 hex>``."""
    return f"moorage_{short_hash(instance_id, 16)}"


def binding_user(instance_id: str, binding_id: str) -> str:
    """The user of a binding: ``moorage_<8 hex>_<12 hex>``, 29 characters (MySQL allows 32)."""
    return f"moorage_{short_hash(instance_id, 8)}_{short_hash(binding_id, 12)}"


class MysqlProvider(Provider):
    """Databases and users on one MySQL-protocol server, reached as an administrator."""

    #: Idle admin connections kept for reuse (a new one costs a handshake and a login).
    IDLE_CONNECTIONS = 4

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._idle: list[pymysql.connections.Connection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- instances ---------------------------------------------------------------------

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        return self._apply(ctx)

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        return self._apply(ctx)

    def deprovision(self, ctx: InstanceContext) -> None:
        database = database_name(ctx.instance_id)
        with self._cursor() as cur:
            bound = mysql_accounts.users_of(cur, database)
            if bound:
                raise PermanentError(
                    f"instance {ctx.instance_id} still has {len(bound)} binding(s); "
                    "unbind them before deleting the instance"
                )
            mysql_accounts.drop_database(cur, database)
        log.info("deprovisioned MySQL database", extra={"instance": ctx.instance_id})

    def _apply(self, ctx: InstanceContext) -> ProvisionResult:
        """Create or converge the database (collation) and the bindings' connection limit."""
        limit = connection_limit(ctx)
        collation = ctx.parameters.get("collation") or DEFAULT_COLLATION
        if collation not in ALLOWED_COLLATIONS:
            raise InvalidParametersError(
                f"collation {collation!r} is not offered; choose from {', '.join(sorted(ALLOWED_COLLATIONS))}"
            )
        database = database_name(ctx.instance_id)
        with self._cursor() as cur:
            mysql_accounts.create_database(cur, database, CHARSET, collation)
            for user in mysql_accounts.users_of(cur, database):
                mysql_accounts.set_connection_limit(cur, user, limit)
        log.info("provisioned MySQL database", extra={"instance": ctx.instance_id})
        return ProvisionResult(
            outputs={"database": database, "collation": collation, "connection_limit": limit}
        )

    # -- bindings ----------------------------------------------------------------------

    def bind(self, ctx: BindingContext) -> BindResult:
        instance_id = ctx.instance.instance_id
        database = database_name(instance_id)
        user = binding_user(instance_id, ctx.binding_id)
        password = secrets.token_urlsafe(24)
        limit = connection_limit(ctx.instance)
        with self._cursor() as cur:
            if not mysql_accounts.database_exists(cur, database):
                raise PermanentError(
                    f"instance {instance_id} has no database (was it provisioned?); cannot bind to it"
                )
            mysql_accounts.create_user(cur, user, password, database, max_connections=limit)
        log.info("created MySQL binding user", extra={"instance": instance_id, "binding": ctx.binding_id})
        host, port = self._public_address()
        return BindResult(
            credentials=credentials(host, port, database, user, password),
            endpoints=[Endpoint(host=host, ports=[str(port)])],
            outputs={"username": user},
        )

    def unbind(self, ctx: BindingContext) -> None:
        instance_id = ctx.instance.instance_id
        with self._cursor() as cur:
            mysql_accounts.drop_user(cur, binding_user(instance_id, ctx.binding_id))
        log.info("dropped MySQL binding user", extra={"instance": instance_id, "binding": ctx.binding_id})

    # -- the server --------------------------------------------------------------------

    def _server(self) -> dict[str, Any]:
        """The admin URL as PyMySQL arguments: ``mysql://user:password@host:port/``."""
        url = self.settings.services.mysql_admin_url
        if not url:
            raise ConfigurationError(
                "no MySQL server for the mysql offering: set MOORAGE_SERVICES_MYSQL_ADMIN_URL "
                "or let `moorage broker` start the embedded MariaDB"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb") or not parts.hostname or not parts.username:
            raise ConfigurationError(
                "MOORAGE_SERVICES_MYSQL_ADMIN_URL must look like mysql://user:password@host:port/"
            )
        return {
            "host": parts.hostname,
            "port": parts.port or DEFAULT_PORT,
            "user": unquote(parts.username),
            "password": unquote(parts.password or ""),
        }

    def _public_address(self) -> tuple[str, int]:
        server = self._server()
        return self.settings.services.mysql_public_host or server["host"], int(server["port"])

    @contextmanager
    def _cursor(self) -> Iterator[Cursor]:
        """An autocommit admin cursor; PyMySQL errors become ProviderError here."""
        server = self._server()
        where = f"{server['host']}:{server['port']}"
        try:
            with self._admin_connection(server) as conn, conn.cursor() as cur:
                yield cur
        except pymysql.OperationalError as exc:
            raise ProviderError(f"could not use the MySQL server at {where}: {describe(exc)}") from None
        except pymysql.MySQLError as exc:
            raise ProviderError(f"the MySQL server at {where} refused: {describe(exc)}") from None

    @contextmanager
    def _admin_connection(self, server: dict[str, Any]) -> Iterator[pymysql.connections.Connection]:
        """A reused autocommit connection; discarded if anything failed while it was lent."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or not conn.open:
            conn = pymysql.connect(**server, autocommit=True, connect_timeout=10, charset=CHARSET)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if len(self._idle) < self.IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()


def connection_limit(ctx: InstanceContext) -> int:
    """The most connections of one binding: the parameter, at most the plan's limit."""
    plan_limit = int(ctx.config.get("connection_limit") or 0)
    wanted = ctx.parameters.get("connection_limit")
    if wanted is None:
        return plan_limit
    if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1:
        raise InvalidParametersError(f"connection_limit must be a positive integer, not {wanted!r}")
    if plan_limit and wanted > plan_limit:
        raise InvalidParametersError(
            f"connection_limit {wanted} is more than plan {ctx.plan.name} allows ({plan_limit}); "
            "ask for less or choose a larger plan"
        )
    return wanted


def credentials(host: str, port: int, database: str, username: str, password: str) -> dict[str, Any]:
    """What a binding hands to the app, in the shapes common drivers and buildpacks expect."""
    user, secret = quote(username, safe=""), quote(password, safe="")
    return {
        "uri": f"mysql://{user}:{secret}@{host}:{port}/{database}",
        "jdbcUrl": f"jdbc:mysql://{host}:{port}/{database}?"
        + urlencode({"user": username, "password": password}),
        "username": username,
        "password": password,
        "host": host,
        "hostname": host,
        "port": port,
        "database": database,
        "name": database,
    }


def describe(exc: pymysql.MySQLError) -> str:
    """``(1045, "Access denied …")`` → ``Access denied … (error 1045)``."""
    if len(exc.args) >= 2:
        return f"{exc.args[1]} (error {exc.args[0]})"
    return str(exc) or type(exc).__name__
