"""The redis provider against a real redis-server, used the way an app would."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from moorage.catalog.model import Offering
from moorage.errors import PermanentError
from moorage.providers.redis import RedisProvider, key_prefix
from moorage.settings import Settings
from tests.fixtures.servers import RunningServer
from tests.services.conftest import binding_ctx, instance_ctx


def client(creds: dict, db: int = 0) -> redis.Redis:
    """An app's client; no retries, so an expected refusal fails at once."""
    return redis.Redis.from_url(
        creds["uri"], db=db, decode_responses=True, socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture
def provider(redis_settings: Settings) -> RedisProvider:
    return RedisProvider(redis_settings)


@pytest.fixture
def admin(redis_server: RunningServer) -> redis.Redis:
    return redis.Redis.from_url(redis_server.admin_url, decode_responses=True)


def test_lifecycle_keys_live_under_the_prefix_and_die_with_the_instance(
    provider: RedisProvider,
    redis_offering: Offering,
    redis_settings: Settings,
    redis_server: RunningServer,
    admin: redis.Redis,
) -> None:
    inst = instance_ctx(redis_offering, "shared", redis_settings)
    assert provider.provision(inst).outputs == {"key_prefix": key_prefix(inst.instance_id)}
    binding = binding_ctx(inst)
    result = provider.bind(binding)
    creds = dict(result.credentials)
    prefix = creds["key_prefix"]
    assert creds["uri"] == f"redis://{creds['username']}:{creds['password']}@127.0.0.1:{redis_server.port}"
    assert (creds["host"], creds["port"]) == ("127.0.0.1", redis_server.port)
    assert [e.to_osb() for e in result.endpoints] == [
        {"host": "127.0.0.1", "ports": [str(redis_server.port)], "protocol": "tcp"}
    ]

    app = client(creds)
    app.set(f"{prefix}:greeting", "hello")
    app.hset(f"{prefix}:user:1", mapping={"name": "ada"})
    assert app.get(f"{prefix}:greeting") == "hello"
    client(creds, db=3).set(f"{prefix}:elsewhere", "x")  # other logical databases too
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.set("unprefixed", "x")
    app.close()

    provider.unbind(binding)
    with pytest.raises(redis.AuthenticationError):
        client(creds).ping()

    admin.set("someone-else:key", "kept")
    provider.deprovision(inst)
    assert admin.keys(f"{prefix}:*") == []
    assert redis.Redis.from_url(redis_server.admin_url, db=3).keys(f"{prefix}:*") == []
    assert admin.get("someone-else:key") == "kept"


def test_a_binding_cannot_touch_another_instances_keys_or_channels(
    provider: RedisProvider, redis_offering: Offering, redis_settings: Settings
) -> None:
    a = instance_ctx(redis_offering, "shared", redis_settings)
    b = instance_ctx(redis_offering, "shared", redis_settings)
    ba, bb = binding_ctx(a), binding_ctx(b)
    creds_a, creds_b = dict(provider.bind(ba).credentials), dict(provider.bind(bb).credentials)
    try:
        client(creds_b).set(f"{creds_b['key_prefix']}:secret", "b")
        app_a = client(creds_a)
        with pytest.raises(redis.exceptions.NoPermissionError):
            app_a.get(f"{creds_b['key_prefix']}:secret")
        with pytest.raises(redis.exceptions.NoPermissionError):
            app_a.publish(f"{creds_b['key_prefix']}:events", "x")
        assert app_a.publish(f"{creds_a['key_prefix']}:events", "x") == 0
        cross_tenant = (
            ("SCAN", "0"),
            ("RANDOMKEY",),
            ("DBSIZE",),
            ("FUNCTION", "LIST"),
            ("FUNCTION", "FLUSH"),
            ("SCRIPT", "FLUSH"),
            ("PUBSUB", "CHANNELS"),
        )
        for command in (("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "GET", "*"), ("ACL", "LIST"), *cross_tenant):
            with pytest.raises(redis.exceptions.NoPermissionError):
                app_a.execute_command(*command)
        assert "redis_version" in app_a.info("server")  # allowed: client libraries ask for it
    finally:
        for binding, inst in ((ba, a), (bb, b)):
            provider.unbind(binding)
            provider.deprovision(inst)


def test_two_bindings_have_their_own_users_and_share_the_keys(
    provider: RedisProvider, redis_offering: Offering, redis_settings: Settings
) -> None:
    inst = instance_ctx(redis_offering, "shared", redis_settings)
    first, second = binding_ctx(inst), binding_ctx(inst)
    creds1, creds2 = dict(provider.bind(first).credentials), dict(provider.bind(second).credentials)
    assert creds1["username"] != creds2["username"]
    assert creds1["password"] != creds2["password"]
    client(creds1).set(f"{creds1['key_prefix']}:counter", 1)
    provider.unbind(first)
    assert client(creds2).incr(f"{creds2['key_prefix']}:counter") == 2
    provider.unbind(second)
    provider.deprovision(inst)


def test_deprovision_is_refused_while_bindings_exist(
    provider: RedisProvider, redis_offering: Offering, redis_settings: Settings, admin: redis.Redis
) -> None:
    inst = instance_ctx(redis_offering, "shared", redis_settings)
    binding = binding_ctx(inst)
    creds = dict(provider.bind(binding).credentials)
    client(creds).set(f"{creds['key_prefix']}:k", "v")
    with pytest.raises(PermanentError, match="still has 1 binding"):
        provider.deprovision(inst)
    assert client(creds).get(f"{creds['key_prefix']}:k") == "v"  # nothing changed
    provider.unbind(binding)
    provider.deprovision(inst)
    assert admin.exists(f"{creds['key_prefix']}:k") == 0


def test_every_method_can_be_called_twice(
    provider: RedisProvider, redis_offering: Offering, redis_settings: Settings, admin: redis.Redis
) -> None:
    inst = instance_ctx(redis_offering, "shared", redis_settings)
    provider.provision(inst)
    provider.provision(inst)
    binding = binding_ctx(inst)
    provider.bind(binding)
    creds = dict(provider.bind(binding).credentials)
    assert client(creds).ping()
    provider.unbind(binding)
    provider.unbind(binding)
    assert creds["username"] not in admin.acl_users()
    provider.deprovision(inst)
    provider.deprovision(inst)


def test_unbind_disconnects_open_clients(
    provider: RedisProvider, redis_offering: Offering, redis_settings: Settings
) -> None:
    inst = instance_ctx(redis_offering, "shared", redis_settings)
    binding = binding_ctx(inst)
    creds = dict(provider.bind(binding).credentials)
    app = redis.Redis.from_url(creds["uri"], single_connection_client=True, retry=Retry(NoBackoff(), 1))
    app.ping()
    provider.unbind(binding)
    with pytest.raises(redis.RedisError):
        app.ping()  # the reconnect redis-py attempts is refused too: the user is gone
    app.close()
    provider.deprovision(inst)


def test_a_read_only_binding_can_read_but_not_write(
    provider: RedisProvider, redis_offering: Offering, redis_settings: Settings
) -> None:
    inst = instance_ctx(redis_offering, "shared", redis_settings)
    writer, reader = binding_ctx(inst), binding_ctx(inst, parameters={"read_only": True})
    creds_w, creds_r = dict(provider.bind(writer).credentials), dict(provider.bind(reader).credentials)
    client(creds_w).set(f"{creds_w['key_prefix']}:k", "v")
    assert client(creds_r).get(f"{creds_r['key_prefix']}:k") == "v"
    with pytest.raises(redis.exceptions.NoPermissionError):
        client(creds_r).set(f"{creds_r['key_prefix']}:k", "other")
    for binding in (writer, reader):
        provider.unbind(binding)
    provider.deprovision(inst)
