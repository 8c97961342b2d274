"""The ``dedicated`` Redis plans: a redis-server per instance, credentials every client accepts.

Why: apps written for Heroku or Cloud Foundry (Bull, Sidekiq, Django's cache) use the
whole key space and log in with ``AUTH <password>`` alone, which authenticates as the
``default`` user. So each instance gets a server of its own
(:class:`moorage.embedded.redis_instance.InstanceServer`, kept running by the broker's
supervisor thread), and each binding gets

- one password of the ``default`` user (``ACL SETUSER default >pw``; Redis 7 lets a user
  have several), for ``REDIS_URL=redis://:<password>@host:port``;
- a named ACL user ``b-<12 hex>`` with the same password, for clients that send a user
  name too (``REDIS_USERNAME``);
- a loopback address of its own (``127.b.c.d``, the credentials' host) on the instance's
  port, which the binding's clients reach it on.

Both users get every key, channel and command except ``@admin`` (CONFIG, SHUTDOWN, DEBUG,
MODULE, ACL, REPLICAOF/SLAVEOF, SAVE, BGSAVE, BGREWRITEAOF, MONITOR, CLIENT KILL/LIST/
PAUSE, FAILOVER, SYNC, SLOWLOG, …) and MIGRATE (it would make the server connect out).
FLUSHALL, FLUSHDB, KEYS and SWAPDB stay allowed: the server holds this instance's data
only. Unbind removes the password from ``default`` (by its SHA-256, as ``ACL GETUSER``
reports it for the named user), deletes the named user (which closes its connections), stops
listening on the address and kills every ``default`` connection: the password worked on
127.0.0.1 and on the other bindings' addresses too, and Redis does not say which password a
connection used, so the other bindings' password-only clients reconnect (their named-user
connections stay).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from moorage.catalog.provider import BindingContext, BindResult, Endpoint, InstanceContext, ProvisionResult
from moorage.embedded.redis_instance import INSTANCES_DIR, InstanceServer, ServerSettings, instance_dir_name
from moorage.errors import PermanentError
from moorage.providers.driver_errors import as_provider_error

log = logging.getLogger(__name__)

#: ACL rules of the bindings (after ``-@all``): the whole key space, every command but these.
BINDING_RULES = ("~*", "&*", "+@all", "-@admin", "-migrate")


def binding_user(binding_id: str) -> str:
    """The named ACL user of a binding: ``b-<12 hex>``."""
    return "b-" + hashlib.sha256(binding_id.encode()).hexdigest()[:12]


def is_dedicated(ctx: InstanceContext) -> bool:
    return ctx.config.get("server") == "dedicated"


def server_settings(ctx: InstanceContext) -> ServerSettings:
    """The plan's persistence with the (validated, defaulted) memory parameters."""
    config, params = ctx.config, ctx.parameters
    return ServerSettings(
        persistence=bool(config.get("persistence", True)),
        maxmemory_mb=int(params.get("maxmemory_mb", config.get("maxmemory_mb", 64))),
        maxmemory_policy=str(params.get("maxmemory_policy", config.get("maxmemory_policy", "noeviction"))),
    )


class DedicatedRedis:
    """The provider methods for instances whose plan has ``config: {server: dedicated}``."""

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        server = self._server(ctx)
        server.create(server_settings(ctx))
        return ProvisionResult(outputs={"server": instance_dir_name(ctx.instance_id), "port": server.port})

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        if ctx.previous_plan is not None and ctx.previous_plan.config.get("server") != "dedicated":
            raise PermanentError("an instance cannot move between the shared and the dedicated plans")
        server = self._server(ctx)
        if not server.exists:
            return self.provision(ctx)
        server.reconfigure(server_settings(ctx))
        return ProvisionResult(outputs={"server": instance_dir_name(ctx.instance_id), "port": server.port})

    def deprovision(self, ctx: InstanceContext) -> None:
        # The broker refuses to delete a bound instance; the provider's own records could be
        # stale (a bind that failed half-way), so they must not block the delete.
        self._server(ctx).destroy()
        log.info("deleted dedicated Redis", extra={"instance": ctx.instance_id})

    def bind(self, ctx: BindingContext) -> BindResult:
        server = self._server(ctx.instance)
        username = binding_user(ctx.binding_id)
        password = secrets.token_urlsafe(24)
        with self._admin(server) as client:
            address = server.address_for(username)
            self._forget_passwords_of(client, username)  # a retried bind leaves none behind
            client.execute_command(
                "ACL", "SETUSER", username, "reset", "on", f">{password}", "-@all", *BINDING_RULES
            )
            client.execute_command(
                "ACL", "SETUSER", "default", "on", f">{password}",
                "resetkeys", "resetchannels", "-@all", *BINDING_RULES,
            )  # fmt: skip
            client.execute_command("ACL", "SAVE")
        port = server.port
        log.info(
            "created dedicated Redis binding",
            extra={"instance": ctx.instance.instance_id, "binding": ctx.binding_id},
        )
        return BindResult(
            credentials={
                "uri": f"redis://:{password}@{address}:{port}",
                "host": address,
                "hostname": address,
                "port": port,
                "username": username,
                "password": password,
            },
            endpoints=[Endpoint(host=address, ports=[str(port)])],
            outputs={"username": username, "address": address},
        )

    def unbind(self, ctx: BindingContext) -> None:
        server = self._server(ctx.instance)
        if not server.exists:
            return  # the instance (and its server) is gone
        username = binding_user(ctx.binding_id)
        with self._admin(server) as client:
            # Refuse new logins first, then stop listening, then close what is already in.
            # (ACL DELUSER itself closes the connections that logged in as the named user.)
            self._forget_passwords_of(client, username)
            client.execute_command("ACL", "DELUSER", username)
            default = client.acl_getuser("default") or {}
            if not default.get("passwords"):
                client.execute_command("ACL", "SETUSER", "default", "off")
            client.execute_command("ACL", "SAVE")
            server.drop_address(username)
            # The password worked as ``default`` on every address the server listens on
            # (127.0.0.1 and the other bindings'), so every password-only connection goes;
            # the other bindings' clients reconnect with their own (still valid) passwords.
            # Moorage's admin logs in as its own user and stays.
            client.execute_command("CLIENT", "KILL", "USER", "default", "SKIPME", "yes")
        log.info("deleted dedicated Redis binding", extra={"binding": ctx.binding_id})

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _server(ctx: InstanceContext) -> InstanceServer:
        return InstanceServer(ctx.settings.data_dir / INSTANCES_DIR / instance_dir_name(ctx.instance_id))

    @staticmethod
    def _forget_passwords_of(client: redis.Redis, username: str) -> None:
        """Remove ``username``'s passwords (SHA-256 hex, as ACL GETUSER shows them) from ``default``."""
        user: dict[str, Any] | None = client.acl_getuser(username)
        for digest in (user or {}).get("passwords") or []:
            client.execute_command("ACL", "SETUSER", "default", f"!{digest}")

    @staticmethod
    @contextmanager
    def _admin(server: InstanceServer) -> Iterator[redis.Redis]:
        """The instance's admin client; redis-py errors become ProviderError (retried)."""
        with (
            as_provider_error(
                (redis.ConnectionError, f"the instance's redis-server on port {server.port} does not answer"),
                (redis.RedisError, "the instance's redis-server refused"),
            ),
            server.admin() as client,
        ):
            yield client
