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

from moorage.catalog.provider import (
    BindingContext,
    BindResult,
    Endpoint,
    InstanceContext,
    Provider,
    ProvisionResult,
)
from moorage.errors import PermanentError, ProviderError
from moorage.providers import pg_roles
from moorage.providers.k8s_workload import Engine, Names, Workload, image_of
from moorage.providers.postgres import binding_role, credentials, first_line, instance_names
from moorage.settings import Settings

log = logging.getLogger(__name__)

PORT = 5432
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


class K8sPostgresProvider(Provider):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.workload = Workload(settings, ENGINE)

    def close(self) -> None:
        self.workload.close()

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        result = self.workload.provision(ctx)
        return ProvisionResult(outputs={**result.outputs, "database": instance_names(ctx.instance_id)[0]})

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        return self.workload.update(ctx)

    def deprovision(self, ctx: InstanceContext) -> None:
        self.workload.deprovision(ctx)

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
        return BindResult(
            credentials=credentials(host, PORT, database, role, password),
            endpoints=[Endpoint(host=host, ports=[str(PORT)])],
            outputs={"username": role},
        )

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
        """An autocommit connection as the instance's superuser; errors become ProviderError."""
        host, port = self.workload.admin_address(instance_id)
        password = self.workload.admin_password(instance_id)
        if password is None:
            raise PermanentError("the instance's admin Secret is gone; it cannot be managed")
        try:
            with psycopg.connect(
                host=host,
                port=port,
                dbname=database,
                user=self.workload.names(instance_id).admin_user,
                password=password,
                autocommit=True,
                connect_timeout=10,
            ) as conn:
                yield conn
        except psycopg.OperationalError as exc:
            if database != "postgres" and f'database "{database}" does not exist' in str(exc):
                raise _NoDatabase() from None
            raise ProviderError(
                f"could not manage roles on the in-cluster PostgreSQL at {host}:{port}: {first_line(exc)}"
            ) from None
        except psycopg.Error as exc:
            raise ProviderError(
                f"could not manage roles on the in-cluster PostgreSQL at {host}:{port}: {first_line(exc)}"
            ) from None
