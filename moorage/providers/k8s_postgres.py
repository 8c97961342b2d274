"""The ``k8s-postgresql`` offering: a PostgreSQL server of its own per instance, in the cluster.

Why: apps on the Kubernetes runtime get a database next to them, managed by the broker
like every other service. The instance is a StatefulSet of the official ``postgres``
image (:mod:`moorage.providers.k8s_workload` makes and watches the objects). Its superuser
is ``moorage_admin_<hash>``, with the password of the instance's Secret; it is the
broker's own, never handed out. Each binding gets a LOGIN role in the scheme of the local
offering (:mod:`moorage.providers.pg_roles`: a NOLOGIN group owns the database
``moorage_<hash>``, bindings are its members), made by connecting to the instance through
its Service. Credentials name the Service's in-cluster DNS name.

Plan ``config``: ``image``, ``storage_gb``, ``storage_class``, ``retain_data``,
``cpu``/``memory`` (requests and limits), ``poll_seconds``. Parameter: ``storage_gb``
(may only grow).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext, ProvisionResult
from moorage.providers import pg_roles
from moorage.providers.admin_pool import AdminPool
from moorage.providers.driver_errors import as_provider_error, first_line
from moorage.providers.k8s_provider import WorkloadProvider
from moorage.providers.k8s_workload import Engine, Names, image_of
from moorage.providers.login_bindings import login_binding
from moorage.providers.postgres import binding_role, credentials, instance_names, usable_pg
from moorage.settings import Settings

log = logging.getLogger(__name__)

PORT = 5432
#: Idle admin connections kept per (instance, database), and at most this many such pairs.
IDLE_PER_DATABASE = 2
IDLE_DATABASES = 32
DATA_PATH = "/var/lib/postgresql/data"


def resources(ctx: InstanceContext) -> dict[str, Any]:
    """Requests equal to limits: a database should not be squeezed by its neighbours."""
    amounts = {"cpu": str(ctx.config.get("cpu", "250m")), "memory": str(ctx.config.get("memory", "256Mi"))}
    return {"requests": amounts, "limits": amounts}


def container(ctx: InstanceContext, names: Names) -> dict[str, Any]:
    password = {"secretKeyRef": {"name": names.secret, "key": "password"}}
    return {
        "name": "postgresql",
        "image": image_of(ctx),
        "ports": [{"name": "postgresql", "containerPort": PORT}],
        "env": [
            {"name": "POSTGRES_USER", "value": names.admin_user},
            {"name": "POSTGRES_PASSWORD", "valueFrom": password},
            {"name": "POSTGRES_DB", "value": "postgres"},
            {"name": "PGDATA", "value": f"{DATA_PATH}/pgdata"},
        ],
        "readinessProbe": {
            "exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-U", names.admin_user, "-d", "postgres"]},
            "periodSeconds": 5,
        },
        "resources": resources(ctx),
        "securityContext": {"allowPrivilegeEscalation": False},
    }


class _NoDatabase(Exception):
    """The instance's database does not exist yet (before its first binding)."""


ENGINE = Engine(name="postgresql", port=PORT, container=container, data_path=DATA_PATH)


class K8sPostgresProvider(WorkloadProvider):
    engine = ENGINE

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._pool: AdminPool[psycopg.Connection] = AdminPool(
            usable_pg, per_key=IDLE_PER_DATABASE, keys=IDLE_DATABASES
        )

    def close(self) -> None:
        self._pool.close()
        super().close()

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        result = super().provision(ctx)
        return ProvisionResult(outputs={**result.outputs, "database": instance_names(ctx.instance_id)[0]})

    def deprovision(self, ctx: InstanceContext) -> None:
        # Idle connections to the instance's server would only fail once it is gone.
        self._pool.forget(lambda key: key[0] == ctx.instance_id)
        super().deprovision(ctx)

    def bind(self, ctx: BindingContext) -> BindResult:
        instance = ctx.instance
        database, group = instance_names(instance.instance_id)
        role = binding_role(instance.instance_id, ctx.binding_id)
        password = secrets.token_urlsafe(24)
        try:
            with self._connect(instance.instance_id, database) as conn:
                pg_roles.create_login_role(conn, role, password, group)
        except _NoDatabase:  # the first binding: the group and its database come first
            with self._connect(instance.instance_id, "postgres") as conn:
                pg_roles.create_group_role(conn, group)
                pg_roles.create_database(conn, database, group)
            with self._connect(instance.instance_id, database) as conn:
                pg_roles.give_public_schema(conn, group)
                pg_roles.create_login_role(conn, role, password, group)
        log.info(
            "created in-cluster PostgreSQL binding role",
            extra={"instance_id": instance.instance_id, "binding_id": ctx.binding_id},
        )
        host = self.workload.names(instance.instance_id).host
        return login_binding(credentials(host, PORT, database, role, password), host, PORT, role)

    def unbind(self, ctx: BindingContext) -> None:
        instance = ctx.instance
        if self.workload.admin_password(instance.instance_id) is None:
            return  # no instance (its Secret is gone), no role
        database, group = instance_names(instance.instance_id)
        with self._connect(instance.instance_id, database) as conn:
            pg_roles.drop_login_role(conn, binding_role(instance.instance_id, ctx.binding_id), group)
        log.info(
            "dropped in-cluster PostgreSQL binding role",
            extra={"instance_id": instance.instance_id, "binding_id": ctx.binding_id},
        )

    @contextmanager
    def _connect(self, instance_id: str, database: str) -> Iterator[psycopg.Connection]:
        """An autocommit connection as the instance's superuser; errors become ProviderError.

        Reused: a connection that served a call without error waits idle for the next one
        (up to ``IDLE_PER_DATABASE`` per database of an instance), which saves a TCP, TLS
        and SCRAM handshake on most binds and unbinds.
        """
        host, port, password = self.workload.admin_login(instance_id)
        user = self.workload.names(instance_id).admin_user
        where = f"the in-cluster PostgreSQL at {host}:{port}"
        with as_provider_error((psycopg.Error, f"could not manage roles on {where}"), describe=first_line):
            try:
                with self._pool.lend(
                    lambda: pg_roles.connect(host, port, database, user, password),
                    key=(instance_id, database),
                ) as conn:
                    yield conn
            except psycopg.OperationalError as exc:
                if database != "postgres" and f'database "{database}" does not exist' in str(exc):
                    raise _NoDatabase() from None
                raise
