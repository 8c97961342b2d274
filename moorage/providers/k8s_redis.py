"""The ``k8s-redis`` offering: a Redis server of its own per instance, in the cluster.

Why: as ``k8s-postgresql``, for Redis. The instance is a StatefulSet of the official
``redis`` image (objects made and watched by :mod:`moorage.providers.k8s_workload`). Its
``default`` user has the password of the instance's Secret and every right: it is the
broker's admin login, never handed out. Users live in an ACL file on the volume, so
they survive a restart. Each binding is an ACL user ``b-<12 hex>`` with its own password
and the rules of the local dedicated plans (the whole key space and every channel, no
``@admin`` commands, no MIGRATE); unbind deletes it, which closes its connections.
Credentials name the Service's in-cluster DNS name.

Plan ``config``: ``image``, ``storage_gb``, ``storage_class``, ``retain_data``,
``cpu``/``memory``, ``maxmemory_mb``, ``poll_seconds``. Parameter: ``storage_gb``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext
from moorage.providers.driver_errors import as_provider_error
from moorage.providers.k8s_postgres import resources
from moorage.providers.k8s_provider import WorkloadProvider
from moorage.providers.k8s_workload import Engine, Names, image_of
from moorage.providers.login_bindings import login_binding
from moorage.providers.redis import redis_credentials
from moorage.providers.redis_dedicated import BINDING_RULES, binding_user

log = logging.getLogger(__name__)

PORT = 6379
DATA_PATH = "/data"

#: The container's start: the ACL file on the volume, its ``default`` line renewed from the
#: Secret (as a SHA-256, so the password is in no file), then redis-server.
START = (
    'touch /data/users.acl && sed -i "/^user default /d" /data/users.acl && '
    'echo "user default on #$(printf %s "$ADMIN_PASSWORD" | sha256sum | cut -d" " -f1) ~* &* +@all" '
    ">> /data/users.acl && exec redis-server --port 6379 --dir /data --appendonly yes "
    "--aclfile /data/users.acl --maxmemory ${MAXMEMORY_MB}mb --maxmemory-policy noeviction"
)


def container(ctx: InstanceContext, names: Names) -> dict[str, Any]:
    return {
        "name": "redis",
        "image": image_of(ctx),
        "command": ["sh", "-c", START],
        "ports": [{"name": "redis", "containerPort": PORT}],
        "env": [
            {
                "name": "ADMIN_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": names.secret, "key": "password"}},
            },
            {"name": "MAXMEMORY_MB", "value": str(ctx.config.get("maxmemory_mb", 200))},
        ],
        "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 5},
        "resources": resources(ctx),
        "securityContext": {"allowPrivilegeEscalation": False},
    }


ENGINE = Engine(name="redis", port=PORT, container=container, data_path=DATA_PATH)


class K8sRedisProvider(WorkloadProvider):
    engine = ENGINE

    def bind(self, ctx: BindingContext) -> BindResult:
        instance_id = ctx.instance.instance_id
        username = binding_user(ctx.binding_id)
        password = secrets.token_urlsafe(24)
        with self._admin(instance_id) as client:
            client.execute_command(
                "ACL", "SETUSER", username, "reset", "on", f">{password}", "-@all", *BINDING_RULES
            )
            client.execute_command("ACL", "SAVE")
        log.info(
            "created in-cluster Redis binding user",
            extra={"instance_id": instance_id, "binding_id": ctx.binding_id},
        )
        host = self.workload.names(instance_id).host
        return login_binding(redis_credentials(host, PORT, username, password), host, PORT, username)

    def unbind(self, ctx: BindingContext) -> None:
        instance_id = ctx.instance.instance_id
        if self.workload.admin_password(instance_id) is None:
            return  # no instance (its Secret is gone), no user
        with self._admin(instance_id) as client:
            # Deleting the user closes every connection that logged in as it.
            client.execute_command("ACL", "DELUSER", binding_user(ctx.binding_id))
            client.execute_command("ACL", "SAVE")
        log.info(
            "deleted in-cluster Redis binding user",
            extra={"instance_id": instance_id, "binding_id": ctx.binding_id},
        )

    @contextmanager
    def _admin(self, instance_id: str) -> Iterator[redis.Redis]:
        host, port, password = self.workload.admin_login(instance_id)
        client = redis.Redis(
            host=host,
            port=port,
            username="default",
            password=password,
            socket_timeout=10,
            socket_connect_timeout=10,
        )
        try:
            with as_provider_error((redis.RedisError, f"the in-cluster Redis at {host}:{port} refused")):
                yield client
        finally:
            client.close()
