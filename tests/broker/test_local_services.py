"""The full OSB lifecycle of the local PostgreSQL and Redis services, over HTTP.

provision → (poll) → bind → use the credentials with psycopg / redis-py → unbind → the
old credentials are rejected → deprovision. Synchronously, and asynchronously through
the worker (a copy of each offering whose plans are marked asynchronous, so every step
goes through 202 and last_operation).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.fixtures.broker import MAIN_CATALOG, RunningBroker, new_id
from tests.fixtures.servers import RunningServer


@pytest.fixture
def services_broker(
    make_broker: Callable[..., RunningBroker], postgres_server: RunningServer, redis_server: RunningServer
) -> RunningBroker:
    return make_broker(
        [MAIN_CATALOG],
        services={"postgres_admin_url": postgres_server.admin_url, "redis_admin_url": redis_server.admin_url},
    )


@pytest.fixture
def async_services_broker(
    make_broker: Callable[..., RunningBroker],
    postgres_server: RunningServer,
    redis_server: RunningServer,
    tmp_path: Path,
) -> RunningBroker:
    folder = tmp_path / "async-catalog"
    folder.mkdir()
    for name in ("postgresql", "redis"):
        data = yaml.safe_load((MAIN_CATALOG / f"{name}.yaml").read_text())
        for plan in data["plans"]:
            plan["asynchronous"] = True
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return make_broker(
        [folder],
        services={"postgres_admin_url": postgres_server.admin_url, "redis_admin_url": redis_server.admin_url},
    )


def _lifecycle_postgres(broker: RunningBroker, asynchronous: bool) -> None:
    osb = broker.client
    sid, pid = osb.ids("postgresql", "shared-small")
    iid, bid = new_id(), new_id()
    resp = osb.provision(iid, sid, pid, {"extensions": ["citext"]}, accepts_incomplete=asynchronous)
    assert resp.status_code == (202 if asynchronous else 201), resp.text
    assert osb.wait(iid).json()["state"] == "succeeded"
    resp = osb.bind(iid, bid, sid, pid, {}, accepts_incomplete=asynchronous)
    assert resp.status_code == (202 if asynchronous else 201), resp.text
    if asynchronous:
        assert "credentials" not in resp.json()
        assert osb.wait(iid, bid).json()["state"] == "succeeded"
        resp = osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}")
    body = resp.json()
    creds = body["credentials"]
    assert {"uri", "username", "password", "host", "hostname", "port", "database", "name", "jdbcUrl"} <= set(
        creds
    )
    assert body["endpoints"][0]["ports"] == [str(creds["port"])]
    with psycopg.connect(creds["uri"]) as conn:
        conn.execute("CREATE TABLE notes (body citext)")
        conn.execute("INSERT INTO notes VALUES ('Hello')")
        assert conn.execute("SELECT count(*) FROM notes WHERE body = 'hello'").fetchone() == (1,)
    resp = osb.unbind(iid, bid, sid, pid, accepts_incomplete=asynchronous)
    assert resp.status_code == (202 if asynchronous else 200)
    assert osb.wait(iid, bid).status_code == 410
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(creds["uri"], connect_timeout=5).close()
    resp = osb.deprovision(iid, sid, pid, accepts_incomplete=asynchronous)
    assert resp.status_code == (202 if asynchronous else 200)
    assert osb.wait(iid).status_code == 410


def _lifecycle_redis(broker: RunningBroker, asynchronous: bool) -> None:
    osb = broker.client
    sid, pid = osb.ids("redis", "shared")
    iid, bid = new_id(), new_id()
    assert osb.provision(iid, sid, pid, {}, accepts_incomplete=asynchronous).status_code == (
        202 if asynchronous else 201
    )
    assert osb.wait(iid).json()["state"] == "succeeded"
    resp = osb.bind(iid, bid, sid, pid, {}, accepts_incomplete=asynchronous)
    if asynchronous:
        assert resp.status_code == 202
        osb.wait(iid, bid)
        resp = osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}")
    creds = resp.json()["credentials"]
    client = redis.Redis.from_url(creds["uri"])
    key = f"{creds['key_prefix']}:counter"
    assert client.incr(key) == 1
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("someone-else:counter", 1)
    client.close()
    assert osb.unbind(iid, bid, sid, pid, accepts_incomplete=asynchronous).status_code == (
        202 if asynchronous else 200
    )
    assert osb.wait(iid, bid).status_code == 410
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(creds["uri"], retry=Retry(NoBackoff(), 0)).ping()
    assert osb.deprovision(iid, sid, pid, accepts_incomplete=asynchronous).status_code == (
        202 if asynchronous else 200
    )
    assert osb.wait(iid).status_code == 410


def test_postgresql_lifecycle_sync(services_broker: RunningBroker) -> None:
    _lifecycle_postgres(services_broker, asynchronous=False)


def test_postgresql_lifecycle_async(async_services_broker: RunningBroker) -> None:
    _lifecycle_postgres(async_services_broker, asynchronous=True)


def test_redis_lifecycle_sync(services_broker: RunningBroker) -> None:
    _lifecycle_redis(services_broker, asynchronous=False)


def test_redis_lifecycle_async(async_services_broker: RunningBroker) -> None:
    _lifecycle_redis(async_services_broker, asynchronous=True)


def test_bindings_of_instance_a_cannot_reach_instance_b(services_broker: RunningBroker) -> None:
    osb = services_broker.client
    sid, pid = osb.ids("postgresql", "shared-small")
    a, b = new_id(), new_id()
    osb.provision(a, sid, pid, {}, accepts_incomplete=False)
    osb.provision(b, sid, pid, {}, accepts_incomplete=False)
    creds_a = osb.bind(a, new_id(), sid, pid, {}).json()["credentials"]
    creds_b = osb.bind(b, new_id(), sid, pid, {}).json()["credentials"]
    other_db = creds_a["uri"].rsplit("/", 1)[0] + "/" + creds_b["database"]
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(other_db, connect_timeout=5).close()
