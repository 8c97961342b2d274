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

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext, ProvisionResult
from moorage.errors import ConfigurationError, InvalidParametersError
from moorage.providers import mysql_accounts, tenants
from moorage.providers.driver_errors import as_provider_error
from moorage.providers.login_bindings import database_credentials, login_binding
from moorage.providers.tenants import short_hash

log = logging.getLogger(__name__)

CHARSET = "utf8mb4"
#: Collations of utf8mb4 an instance may choose (the offering's schema lists the same).
ALLOWED_COLLATIONS = frozenset(
    {"utf8mb4_unicode_ci", "utf8mb4_general_ci", "utf8mb4_bin", "utf8mb4_unicode_520_ci"}
)
DEFAULT_COLLATION = "utf8mb4_unicode_ci"
DEFAULT_PORT = 3306


def database_name(instance_id: str) -> str:
    """The database of an instance: ``moorage_<16 hex>``."""
    return f"moorage_{short_hash(instance_id, 16)}"


def binding_user(instance_id: str, binding_id: str) -> str:
    """The user of a binding: ``moorage_<8 hex>_<12 hex>``, 29 characters (MySQL allows 32)."""
    return f"moorage_{short_hash(instance_id, 8)}_{short_hash(binding_id, 12)}"


class MysqlProvider(tenants.SharedServerProvider[Connection]):
    """Databases and users on one MySQL-protocol server, reached as an administrator."""

    @staticmethod
    def usable(conn: Connection) -> bool:
        return bool(conn.open)

    # -- instances ---------------------------------------------------------------------

    def deprovision(self, ctx: InstanceContext) -> None:
        database = database_name(ctx.instance_id)
        with self._cursor() as cur:
            tenants.refuse_while_bound(ctx.instance_id, len(mysql_accounts.users_of(cur, database)))
            mysql_accounts.drop_database(cur, database)
        log.info("deprovisioned MySQL database", extra={"instance": ctx.instance_id})

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
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
            tenants.refuse_unprovisioned(instance_id, mysql_accounts.database_exists(cur, database))
            mysql_accounts.create_user(cur, user, password, database, max_connections=limit)
        log.info("created MySQL binding user", extra={"instance": instance_id, "binding": ctx.binding_id})
        host, port = self._public_address()
        return login_binding(credentials(host, port, database, user, password), host, port, user)

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
        with (
            as_provider_error(
                (pymysql.OperationalError, f"could not use the MySQL server at {where}"),
                (pymysql.MySQLError, f"the MySQL server at {where} refused"),
                describe=describe,
            ),
            self._pool.lend(lambda: connect(server)) as conn,
            conn.cursor() as cur,
        ):
            yield cur


def connection_limit(ctx: InstanceContext) -> int:
    """The most connections of one binding: the parameter, at most the plan's limit (0: no limit)."""
    plan_limit = int(ctx.config.get("connection_limit") or 0)
    return tenants.requested_connection_limit(ctx, plan_limit or None) or plan_limit


def credentials(host: str, port: int, database: str, username: str, password: str) -> dict[str, Any]:
    """What a MySQL binding hands to the app."""
    return database_credentials("mysql", "mysql", host, port, database, username, password)


def connect(server: dict[str, Any]) -> Connection:
    """A new autocommit admin connection, in the database's character set."""
    return pymysql.connect(**server, autocommit=True, connect_timeout=10, charset=CHARSET)


def describe(exc: BaseException) -> str:
    """``(1045, "Access denied …")`` → ``Access denied … (error 1045)``."""
    if len(exc.args) >= 2:
        return f"{exc.args[1]} (error {exc.args[0]})"
    return str(exc) or type(exc).__name__
