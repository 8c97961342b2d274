"""The ``redis`` provider: a key prefix per instance on a shared server, or a server of its own.

Plans whose config says ``server: dedicated`` are served by
:class:`moorage.providers.redis_dedicated.DedicatedRedis` (a redis-server per instance);
the rest of this module is the ``shared`` plan.

Why: the local Redis offering (``catalog/redis.yaml``). The server is the one at
``settings.services.redis_admin_url``, Moorage's embedded server by default. Redis has
no databases to hand out, so an instance is a key prefix (``inst-<hash>``) and each
binding an ACL user allowed only keys ``<prefix>:*`` and channels ``<prefix>:*``, with
every command except the ``@admin`` and ``@dangerous`` ones (INFO is allowed back:
Sidekiq and others call it on connect). A binding may ask to be ``read_only``.

ACL users are saved with ``ACL SAVE`` when the server has an aclfile (the embedded one
does), so bindings survive a restart of Redis. Deprovision deletes the instance's keys
in every logical database (SCAN + UNLINK) and is refused while binding users remain.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext, Provider, ProvisionResult
from moorage.errors import ConfigurationError, PermanentError
from moorage.providers.driver_errors import as_provider_error
from moorage.providers.login_bindings import login_binding
from moorage.providers.redis_dedicated import DedicatedRedis, is_dedicated
from moorage.providers.tenants import refuse_while_bound

log = logging.getLogger(__name__)

#: Commands that see or change state of the whole server, across key prefixes: key
#: names of other instances (SCAN, RANDOMKEY, DBSIZE), the one function library and
#: script cache of the server, and the channel list.
CROSS_TENANT = (
    "-scan",
    "-randomkey",
    "-dbsize",
    "-function",
    "-fcall",
    "-fcall_ro",
    "-script|flush",
    "-pubsub|channels",
    "-pubsub|shardchannels",
    "-pubsub|numsub",
    "-pubsub|shardnumsub",
)
#: ACL rules after ``reset``: every command but the server-wide, dangerous and cross-tenant ones.
READ_WRITE_RULES = ("+@all", "-@admin", "-@dangerous", "+info", *CROSS_TENANT)
READ_ONLY_RULES = (
    "-@all",
    "+@read",
    "+@connection",
    "+@transaction",
    "+subscribe",
    "+psubscribe",
    "+unsubscribe",
    "+punsubscribe",
    "-@admin",
    "-@dangerous",
    "+info",
    *CROSS_TENANT,
)
_UNLINK_BATCH = 500


def key_prefix(instance_id: str) -> str:
    """The instance's key prefix, ``inst-<12 hex>``; keys are ``<prefix>:<anything>``."""
    return "inst-" + hashlib.sha256(instance_id.encode()).hexdigest()[:12]


def binding_user(instance_id: str, binding_id: str) -> str:
    """The ACL user of a binding: ``<prefix>.<12 hex>``."""
    return f"{key_prefix(instance_id)}.{hashlib.sha256(binding_id.encode()).hexdigest()[:12]}"


class RedisProvider(Provider):
    """Key prefixes and ACL users on one Redis server, reached as an all-commands user."""

    dedicated = DedicatedRedis()

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        if is_dedicated(ctx):
            return self.dedicated.provision(ctx)
        # Nothing to create on the server: the prefix exists once a binding writes a key.
        with self._client() as client:
            client.ping()
        return ProvisionResult(outputs={"key_prefix": key_prefix(ctx.instance_id)})

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        if is_dedicated(ctx):
            return self.dedicated.update(ctx)
        if ctx.previous_plan is not None and ctx.previous_plan.config.get("server") == "dedicated":
            raise PermanentError("an instance cannot move between the dedicated and the shared plans")
        return self.provision(ctx)

    def deprovision(self, ctx: InstanceContext) -> None:
        if is_dedicated(ctx):
            return self.dedicated.deprovision(ctx)
        prefix = key_prefix(ctx.instance_id)
        with self._client() as client:
            refuse_while_bound(ctx.instance_id, sum(u.startswith(prefix + ".") for u in client.acl_users()))
            databases = int(client.config_get("databases").get("databases", 16))
        deleted = 0
        for db in range(databases):
            with self._client(db) as client:
                batch: list[str] = []
                for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                    batch.append(key)
                    if len(batch) >= _UNLINK_BATCH:
                        deleted += client.unlink(*batch)
                        batch.clear()
                if batch:
                    deleted += client.unlink(*batch)
        log.info("deprovisioned Redis prefix", extra={"instance": ctx.instance_id, "keys_deleted": deleted})

    def bind(self, ctx: BindingContext) -> BindResult:
        if is_dedicated(ctx.instance):
            return self.dedicated.bind(ctx)
        instance_id = ctx.instance.instance_id
        prefix = key_prefix(instance_id)
        username = binding_user(instance_id, ctx.binding_id)
        password = secrets.token_urlsafe(24)
        rules = READ_ONLY_RULES if ctx.parameters.get("read_only") else READ_WRITE_RULES
        with self._client() as client:
            client.execute_command(
                "ACL",
                "SETUSER",
                username,
                "reset",
                "on",
                f">{password}",
                f"~{prefix}:*",
                f"&{prefix}:*",
                *rules,
            )
            self._save_acl(client)
        log.info("created Redis binding user", extra={"instance": instance_id, "binding": ctx.binding_id})
        host, port = self._public_address()
        credentials = {**redis_credentials(host, port, username, password), "key_prefix": prefix}
        return login_binding(credentials, host, port, username)

    def unbind(self, ctx: BindingContext) -> None:
        if is_dedicated(ctx.instance):
            return self.dedicated.unbind(ctx)
        username = binding_user(ctx.instance.instance_id, ctx.binding_id)
        with self._client() as client:
            if client.acl_getuser(username) is None:
                return
            # Forbid new logins first, then drop the connections that are already in.
            client.execute_command("ACL", "SETUSER", username, "off")
            try:
                client.execute_command("CLIENT", "KILL", "USER", username)
            except redis.ResponseError:
                pass  # deleted concurrently
            client.execute_command("ACL", "DELUSER", username)
            self._save_acl(client)
        log.info("deleted Redis binding user", extra={"binding": ctx.binding_id})

    # -- the server --------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        url = self.settings.services.redis_admin_url
        if not url:
            raise ConfigurationError(
                "no Redis server for the redis offering: set MOORAGE_SERVICES_REDIS_ADMIN_URL "
                "or let `moorage up` start the embedded one"
            )
        return url

    def _public_address(self) -> tuple[str, int]:
        parts = urlsplit(self.admin_url)
        return self.settings.services.redis_public_host or parts.hostname or "127.0.0.1", parts.port or 6379

    @staticmethod
    def _save_acl(client: redis.Redis) -> None:
        """Persist ACL users when the server keeps them in an aclfile; otherwise nothing to do."""
        try:
            client.execute_command("ACL", "SAVE")
        except redis.ResponseError as exc:
            if "acl file" not in str(exc).lower():
                raise

    @contextmanager
    def _client(self, db: int = 0) -> Iterator[redis.Redis]:
        """An admin client; redis-py errors become ProviderError here."""
        parts = urlsplit(self.admin_url)
        where = f"{parts.hostname}:{parts.port or 6379}"
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": 10,
            "socket_connect_timeout": 10,
            # One quick retry for a dropped connection; the operation engine does the backing off.
            "retry": Retry(NoBackoff(), 1),
        }
        client = redis.Redis.from_url(self.admin_url, db=db, **options)
        try:
            with as_provider_error(
                (redis.ConnectionError, f"could not reach the Redis server at {where}"),
                (redis.RedisError, f"the Redis server at {where} refused"),
            ):
                yield client
        finally:
            client.close()


def redis_credentials(host: str, port: int, username: str, password: str) -> dict[str, Any]:
    """What a Redis binding with a user name hands to the app: ``uri`` and its parts."""
    user, secret = quote(username, safe=""), quote(password, safe="")
    return {
        "uri": f"redis://{user}:{secret}@{host}:{port}",
        "host": host,
        "hostname": host,
        "port": port,
        "username": username,
        "password": password,
    }
