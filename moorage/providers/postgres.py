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

import logging
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext, ProvisionResult
from moorage.errors import ConfigurationError, InvalidParametersError
from moorage.providers import pg_roles, tenants
from moorage.providers.driver_errors import as_provider_error, first_line
from moorage.providers.login_bindings import database_credentials, login_binding
from moorage.providers.tenants import short_hash

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


def instance_names(instance_id: str) -> tuple[str, str]:
    """``(database, group role)`` of an instance: ``moorage_<h>`` and ``moorage_<h>_owner``."""
    base = f"moorage_{short_hash(instance_id, 16)}"
    return base, f"{base}_owner"


def binding_role(instance_id: str, binding_id: str) -> str:
    """The LOGIN role of a binding: ``moorage_<instance hash>_<binding hash>``."""
    return f"moorage_{short_hash(instance_id, 16)}_{short_hash(binding_id, 12)}"


def usable_pg(conn: psycopg.Connection) -> bool:
    """Whether an idle psycopg connection may serve again (neither closed nor broken)."""
    return not (conn.closed or conn.broken)


class PostgresProvider(tenants.SharedServerProvider[psycopg.Connection]):
    """Databases and roles on one PostgreSQL server, reached as a superuser."""

    usable = staticmethod(usable_pg)

    # -- instances ---------------------------------------------------------------------

    def deprovision(self, ctx: InstanceContext) -> None:
        database, group = instance_names(ctx.instance_id)
        with self._connect() as conn:
            if pg_roles.role_exists(conn, group):
                tenants.refuse_while_bound(ctx.instance_id, len(pg_roles.members(conn, group)))
            pg_roles.drop_database(conn, database)
            pg_roles.drop_group_role(conn, group)
        log.info("deprovisioned PostgreSQL database", extra={"instance": ctx.instance_id})

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
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
        """The parameter, at most the plan's limit; without either, no limit (None)."""
        plan_limit = ctx.config.get("connection_limit")
        plan_limit = None if plan_limit is None else int(plan_limit)
        wanted = tenants.requested_connection_limit(ctx, plan_limit)
        return plan_limit if wanted is None else wanted

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
            tenants.refuse_unprovisioned(instance_id, pg_roles.database_exists(conn, database))
            pg_roles.create_login_role(conn, role, password, group)
        log.info(
            "created PostgreSQL binding role", extra={"instance": instance_id, "binding": ctx.binding_id}
        )
        host, port = self._public_address()
        return login_binding(credentials(host, port, database, role, password), host, port, role)

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
        with as_provider_error(
            (psycopg.OperationalError, f"could not use the PostgreSQL server at {where}"),
            (psycopg.Error, f"the PostgreSQL server at {where} refused"),
            describe=first_line,
        ):
            if database:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10, **extra) as conn:
                    yield conn
            else:
                with self._pool.lend(self._connect_admin) as conn:
                    yield conn

    def _connect_admin(self) -> psycopg.Connection:
        """A new autocommit connection to the admin URL's own database (the one the pool keeps)."""
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)


def credentials(host: str, port: int, database: str, username: str, password: str) -> dict[str, Any]:
    """What a PostgreSQL binding hands to the app (also the RDS and in-cluster offerings')."""
    return database_credentials("postgres", "postgresql", host, port, database, username, password)
