"""The ``postgres`` provider: a database per service instance on a shared PostgreSQL server.

Why: the local PostgreSQL offering (``catalog/postgresql.yaml``). The server is the one
at ``settings.services.postgres_admin_url``, Moorage's embedded server by default. Each
instance gets a database owned by a NOLOGIN group role; each binding a LOGIN role in
that group (the scheme is in :mod:`moorage.providers.pg_roles`). Names derive from the
ids by hashing, so every call finds what an earlier call made, and names are always
valid identifiers whatever the platform's ids look like.

Plan ``config``: ``connection_limit`` (the most connections to the database). Instance
parameters: ``connection_limit`` (at most the plan's) and ``extensions`` (from an
allow-list; added on provision and update, never dropped, since that would lose data).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from moorage.catalog.provider import (
    BindingContext,
    BindResult,
    Endpoint,
    InstanceContext,
    Provider,
    ProvisionResult,
)
from moorage.errors import ConfigurationError, InvalidParametersError, PermanentError, ProviderError
from moorage.providers import pg_roles
from moorage.settings import Settings

log = logging.getLogger(__name__)

#: Extensions a binding may ask for: trusted, self-contained, shipped with PostgreSQL.
ALLOWED_EXTENSIONS = frozenset(
    {
        "pgcrypto",
        "citext",
        "hstore",
        "uuid-ossp",
        "pg_trgm",
        "btree_gin",
        "btree_gist",
        "unaccent",
        "fuzzystrmatch",
        "tablefunc",
        "intarray",
        "ltree",
    }
)


def short_hash(value: str, length: int) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def instance_names(instance_id: str) -> tuple[str, str]:
    """``(database, group role)`` of an instance: ``moorage_<h>`` and ``moorage_<h>_owner``."""
    base = f"moorage_{short_hash(instance_id, 16)}"
    return base, f"{base}_owner"


def binding_role(instance_id: str, binding_id: str) -> str:
    """The LOGIN role of a binding: ``moorage_<instance hash>_<binding hash>``."""
    return f"moorage_{short_hash(instance_id, 16)}_{short_hash(binding_id, 12)}"


class PostgresProvider(Provider):
    """Databases and roles on one PostgreSQL server, reached as a superuser."""

    #: Idle admin connections kept for reuse (a new one costs a TLS + SCRAM handshake).
    IDLE_CONNECTIONS = 4

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._idle: list[psycopg.Connection] = []
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
        database, group = instance_names(ctx.instance_id)
        with self._connect() as conn:
            if pg_roles.role_exists(conn, group):
                bound = pg_roles.members(conn, group)
                if bound:
                    raise PermanentError(
                        f"instance {ctx.instance_id} still has {len(bound)} binding(s); "
                        "unbind them before deleting the instance"
                    )
            pg_roles.drop_database(conn, database)
            pg_roles.drop_group_role(conn, group)
        log.info("deprovisioned PostgreSQL database", extra={"instance": ctx.instance_id})

    def _apply(self, ctx: InstanceContext) -> ProvisionResult:
        """Create or converge the database: owner, connection limit, extensions."""
        limit = self._connection_limit(ctx)
        extensions = self._extensions(ctx.parameters)
        database, group = instance_names(ctx.instance_id)
        with self._connect() as conn:
            pg_roles.create_group_role(conn, group)
            pg_roles.create_database(conn, database, group, connection_limit=limit)
        with self._connect(database) as conn:
            pg_roles.give_public_schema(conn, group)
            for name in extensions:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))
        log.info("provisioned PostgreSQL database", extra={"instance": ctx.instance_id})
        return ProvisionResult(outputs={"database": database, "group_role": group, "connection_limit": limit})

    @staticmethod
    def _connection_limit(ctx: InstanceContext) -> int | None:
        plan_limit = ctx.config.get("connection_limit")
        wanted = ctx.parameters.get("connection_limit")
        if wanted is None:
            return None if plan_limit is None else int(plan_limit)
        if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1:
            raise InvalidParametersError(f"connection_limit must be a positive integer, not {wanted!r}")
        if plan_limit is not None and wanted > int(plan_limit):
            raise InvalidParametersError(
                f"connection_limit {wanted} is more than plan {ctx.plan.name} allows ({plan_limit}); "
                "ask for less or choose a larger plan"
            )
        return wanted

    @staticmethod
    def _extensions(parameters: Mapping[str, Any]) -> list[str]:
        names = parameters.get("extensions") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidParametersError("extensions must be a list of extension names")
        unknown = sorted(set(names) - ALLOWED_EXTENSIONS)
        if unknown:
            raise InvalidParametersError(
                f"extension(s) {', '.join(unknown)} are not offered; choose from {', '.join(sorted(ALLOWED_EXTENSIONS))}"
            )
        return sorted(set(names))

    # -- bindings ----------------------------------------------------------------------

    def bind(self, ctx: BindingContext) -> BindResult:
        instance_id = ctx.instance.instance_id
        database, group = instance_names(instance_id)
        role = binding_role(instance_id, ctx.binding_id)
        password = secrets.token_urlsafe(24)
        with self._connect() as conn:
            if not pg_roles.database_exists(conn, database):
                raise PermanentError(
                    f"instance {instance_id} has no database (was it provisioned?); cannot bind to it"
                )
            pg_roles.create_login_role(conn, role, password, group)
        log.info(
            "created PostgreSQL binding role", extra={"instance": instance_id, "binding": ctx.binding_id}
        )
        host, port = self._public_address()
        return BindResult(
            credentials=credentials(host, port, database, role, password),
            endpoints=[Endpoint(host=host, ports=[str(port)])],
            outputs={"username": role},
        )

    def unbind(self, ctx: BindingContext) -> None:
        instance_id = ctx.instance.instance_id
        database, group = instance_names(instance_id)
        role = binding_role(instance_id, ctx.binding_id)
        with self._connect() as conn:
            if not pg_roles.role_exists(conn, role):
                return
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
            pg_roles.terminate_sessions(conn, role=role)
            try:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
                owns_objects = False
            except psycopg.errors.DependentObjectsStillExist:
                owns_objects = True
            in_database = owns_objects and pg_roles.database_exists(conn, database)
        if owns_objects:
            with self._connect(database if in_database else None) as conn:
                pg_roles.drop_login_role(conn, role, group)
        log.info(
            "dropped PostgreSQL binding role", extra={"instance": instance_id, "binding": ctx.binding_id}
        )

    # -- the server --------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        url = self.settings.services.postgres_admin_url
        if not url:
            raise ConfigurationError(
                "no PostgreSQL server for the postgres offering: set MOORAGE_SERVICES_POSTGRES_ADMIN_URL "
                "or let `moorage up` start the embedded one"
            )
        return url

    def _public_address(self) -> tuple[str, int]:
        params = conninfo_to_dict(self.admin_url)
        host = self.settings.services.postgres_public_host or str(params.get("host") or "127.0.0.1")
        return host, int(params.get("port") or 5432)

    @contextmanager
    def _connect(self, database: str | None = None) -> Iterator[psycopg.Connection]:
        """An autocommit superuser connection; psycopg errors become ProviderError here."""
        extra: dict[str, Any] = {"dbname": database} if database else {}
        params = conninfo_to_dict(self.admin_url)
        where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
        try:
            if database:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10, **extra) as conn:
                    yield conn
            else:
                with self._admin_connection() as conn:
                    yield conn
        except psycopg.OperationalError as exc:
            raise ProviderError(
                f"could not use the PostgreSQL server at {where}: {first_line(exc)}"
            ) from None
        except psycopg.Error as exc:
            raise ProviderError(f"the PostgreSQL server at {where} refused: {first_line(exc)}") from None

    @contextmanager
    def _admin_connection(self) -> Iterator[psycopg.Connection]:
        """A reused autocommit connection to the admin database; discarded if anything failed."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)
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


def credentials(host: str, port: int, database: str, username: str, password: str) -> dict[str, Any]:
    """What a binding hands to the app, in the shapes common drivers and buildpacks expect."""
    user, secret = quote(username, safe=""), quote(password, safe="")
    return {
        "uri": f"postgres://{user}:{secret}@{host}:{port}/{database}",
        "jdbcUrl": f"jdbc:postgresql://{host}:{port}/{database}?"
        + urlencode({"user": username, "password": password}),
        "username": username,
        "password": password,
        "host": host,
        "hostname": host,
        "port": port,
        "database": database,
        "name": database,
    }


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
