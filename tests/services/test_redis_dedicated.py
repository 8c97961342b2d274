"""Redis ``dedicated`` through the OSB API: a real redis-server per instance, used as apps do.

The broker runs with the real catalog and its supervisor thread, in a data dir the
unprivileged service user can reach (pytest's own temp dirs are private to root).
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from moorage.embedded.processes import read_pidfile
from moorage.embedded.redis_instance import INSTANCES_DIR, InstanceServer, instance_dir_name
from tests.fixtures.broker import (
    MAIN_CATALOG,
    BrokerProcess,
    OsbClient,
    broker_settings,
    new_id,
    settings_env,
)
from tests.fixtures.servers import RunningServer
from tests.polling import wait_for


def app_client(url: str | None = None, **kwargs: Any) -> redis.Redis:
    """An app's client; no retries, so a refusal or a closed connection shows at once."""
    options: dict[str, Any] = {"decode_responses": True, "socket_timeout": 5, "retry": Retry(NoBackoff(), 0)}
    if url is not None:
        return redis.Redis.from_url(url, **options, **kwargs)
    return redis.Redis(**options, **kwargs)


@pytest.fixture
def osb(make_dedicated_broker: Any) -> OsbClient:
    return make_dedicated_broker().client


class Instance:
    """A provisioned instance and the helpers the tests use on it."""

    def __init__(self, osb: OsbClient, data_dir: Path, plan: str = "dedicated", **parameters: Any) -> None:
        self.osb, self.id = osb, new_id()
        self.service_id, self.plan_id = osb.ids("redis", plan)
        resp = osb.provision(self.id, self.service_id, self.plan_id, parameters or None)
        assert resp.status_code == 201, resp.text
        self.server = InstanceServer(data_dir / INSTANCES_DIR / instance_dir_name(self.id))

    def bind(self) -> tuple[str, dict[str, Any]]:
        binding_id = new_id()
        resp = self.osb.bind(self.id, binding_id, self.service_id, self.plan_id)
        assert resp.status_code == 201, resp.text
        return binding_id, resp.json()["credentials"]

    def unbind(self, binding_id: str) -> None:
        resp = self.osb.unbind(self.id, binding_id, self.service_id, self.plan_id)
        assert resp.status_code == 200, resp.text

    def deprovision(self) -> None:
        resp = self.osb.deprovision(self.id, self.service_id, self.plan_id)
        assert resp.status_code == 200, resp.text


def test_the_first_plan_is_dedicated_and_shared_says_to_use_the_prefix(osb: OsbClient) -> None:
    service = next(s for s in osb.catalog()["services"] if s["name"] == "redis")
    assert [p["name"] for p in service["plans"]][0] == "dedicated"
    shared = next(p for p in service["plans"] if p["name"] == "shared")
    assert "REDIS_KEY_PREFIX" in shared["description"]


def test_a_binding_gets_the_whole_key_space_with_password_only_and_with_a_user_name(
    osb: OsbClient, dedicated_data_dir: Path
) -> None:
    inst = Instance(osb, dedicated_data_dir)
    _, creds = inst.bind()
    host, port, password = creds["host"], creds["port"], creds["password"]
    assert creds["uri"] == f"redis://:{password}@{host}:{port}"
    assert host.startswith("127.") and host != "127.0.0.1"

    plain = app_client(creds["uri"])  # sends AUTH <password> only, as ioredis 4 and old redis-py do
    plain.set("bull:work:id", "1")  # no prefix: the key space is the instance's
    assert plain.incr("bull:work:id") == 2
    assert app_client(creds["uri"], db=3).set("elsewhere", "x")
    named = app_client(host=host, port=port, username=creds["username"], password=password)
    assert named.get("bull:work:id") == "2"
    assert named.acl_whoami() == creds["username"]
    assert plain.acl_whoami() == "default"

    for refused in (("CONFIG", "GET", "maxmemory"), ("SHUTDOWN",), ("ACL", "LIST"), ("MONITOR",), ("SAVE",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            named.execute_command(*refused)
        with pytest.raises(redis.exceptions.NoPermissionError):
            plain.execute_command(*refused)
    assert plain.info()["redis_version"].startswith("7.")
    assert plain.flushall()  # the instance's own data only
    assert plain.dbsize() == 0
    with pytest.raises(redis.AuthenticationError):
        app_client(host=host, port=port, password="not-" + password).ping()


def test_unbind_revokes_that_binding_and_closes_its_connections_only(
    osb: OsbClient, dedicated_data_dir: Path
) -> None:
    inst = Instance(osb, dedicated_data_dir)
    first_id, first = inst.bind()
    _, second = inst.bind()
    assert first["password"] != second["password"] and first["username"] != second["username"]
    assert first["host"] != second["host"] and first["port"] == second["port"]

    old_plain, old_named = (
        app_client(first["uri"]),
        app_client(
            host=first["host"], port=first["port"], username=first["username"], password=first["password"]
        ),
    )
    other = app_client(
        host=second["host"], port=second["port"], username=second["username"], password=second["password"]
    )
    for c in (old_plain, old_named, other):
        assert c.ping()

    inst.unbind(first_id)
    for closed in (old_plain, old_named):  # their open connections are gone
        with pytest.raises(redis.ConnectionError):
            closed.get("k")
    with pytest.raises((redis.AuthenticationError, redis.ConnectionError)):
        app_client(host=first["host"], port=first["port"], password=first["password"]).ping()
    with pytest.raises(redis.AuthenticationError):  # the old secret on an address still served
        app_client(host=second["host"], port=second["port"], password=first["password"]).ping()
    assert other.set("still", "works")  # the other binding's named connection stayed open
    assert app_client(second["uri"]).get("still") == "works"


def test_two_instances_cannot_see_each_others_keys(osb: OsbClient, dedicated_data_dir: Path) -> None:
    a, b = Instance(osb, dedicated_data_dir), Instance(osb, dedicated_data_dir)
    (_, ca), (_, cb) = a.bind(), b.bind()
    assert ca["port"] != cb["port"]
    app_client(ca["uri"]).set("secret", "a's")
    assert app_client(cb["uri"]).get("secret") is None
    assert app_client(cb["uri"]).keys("*") == []
    with pytest.raises((redis.AuthenticationError, redis.ConnectionError)):
        app_client(host=cb["host"], port=cb["port"], password=ca["password"]).ping()


def test_bad_parameters_are_refused_naming_them_and_nothing_is_created(
    osb: OsbClient, dedicated_data_dir: Path
) -> None:
    service_id, plan_id = osb.ids("redis", "dedicated")
    for parameters, named in (
        ({"maxmemory_mb": 100000}, "maxmemory_mb"),
        ({"maxmemory_policy": "sometimes"}, "maxmemory_policy"),
        ({"maxmemory": "1gb"}, "maxmemory"),
    ):
        instance_id = new_id()
        resp = osb.provision(instance_id, service_id, plan_id, parameters)
        assert resp.status_code == 400, resp.text
        assert named in resp.json()["description"]
        assert osb.http.get(f"/v2/service_instances/{instance_id}").status_code == 404
    assert not list((dedicated_data_dir / INSTANCES_DIR).glob("*"))


def test_memory_limit_and_policy_follow_the_plan_and_parameters(
    osb: OsbClient, dedicated_data_dir: Path
) -> None:
    inst = Instance(osb, dedicated_data_dir, maxmemory_mb=32, maxmemory_policy="allkeys-lfu")
    cache = Instance(osb, dedicated_data_dir, plan="dedicated-cache")
    with inst.server.admin() as admin:
        assert admin.config_get("maxmemory")["maxmemory"] == str(32 * 1024 * 1024)
        assert admin.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lfu"
        assert admin.config_get("appendonly")["appendonly"] == "yes"
    with cache.server.admin() as admin:
        assert admin.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
        assert admin.config_get("appendonly")["appendonly"] == "no"
    resp = osb.update(inst.id, {"service_id": inst.service_id, "parameters": {"maxmemory_mb": 48}})
    assert resp.status_code == 200, resp.text
    with inst.server.admin() as admin:
        assert admin.config_get("maxmemory")["maxmemory"] == str(48 * 1024 * 1024)


def test_deprovision_stops_the_server_and_deletes_its_data(osb: OsbClient, dedicated_data_dir: Path) -> None:
    inst = Instance(osb, dedicated_data_dir)
    binding_id, creds = inst.bind()
    app_client(creds["uri"]).set("k", "v")
    resp = osb.deprovision(inst.id, inst.service_id, inst.plan_id)
    assert resp.status_code == 400 and "binding" in resp.json()["description"], resp.text
    assert app_client(creds["uri"]).get("k") == "v"  # refused while bound: nothing deleted
    inst.unbind(binding_id)
    pid = read_pidfile(inst.server.pid_file)
    inst.deprovision()
    assert not inst.server.base.exists()
    assert pid is not None and _gone(pid)
    with pytest.raises(redis.ConnectionError):
        app_client(host="127.0.0.1", port=creds["port"], password=creds["password"]).ping()


@pytest.mark.parametrize(("plan", "kept"), [("dedicated", "v"), ("dedicated-cache", None)])
def test_a_killed_server_is_restarted_with_its_data_as_the_plan_says(
    osb: OsbClient, dedicated_data_dir: Path, plan: str, kept: str | None
) -> None:
    inst = Instance(osb, dedicated_data_dir, plan=plan)
    _, creds = inst.bind()
    app_client(creds["uri"]).set("k", "v")
    pid = read_pidfile(inst.server.pid_file)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _answers(creds["uri"]), timeout=20, what="the killed redis-server to be restarted")
    assert read_pidfile(inst.server.pid_file) != pid
    assert app_client(creds["uri"]).get("k") == kept


def test_servers_and_their_data_survive_a_restart_of_moorage(
    make_dedicated_broker: Any, dedicated_data_dir: Path
) -> None:
    broker = make_dedicated_broker()
    inst = Instance(broker.client, dedicated_data_dir)
    _, creds = inst.bind()
    app_client(creds["uri"]).rpush("jobs", "a", "b")
    broker.stop()
    inst.server.stop()  # as after a reboot: nothing runs
    assert not _answers(creds["uri"])

    make_dedicated_broker()  # a new Moorage on the same data dir
    wait_for(lambda: _answers(creds["uri"]), timeout=20, what="the supervisor to start the server")
    assert app_client(creds["uri"]).lrange("jobs", 0, -1) == ["a", "b"]


def _answers(url: str) -> bool:
    try:
        return bool(app_client(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _gone(pid: int) -> bool:
    """No such process, or only a zombie its parent has not waited for yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_the_moorage_broker_command_supervises_servers_that_outlive_its_sigkill(
    dedicated_data_dir: Path, redis_server: RunningServer, postgres_server: RunningServer
) -> None:
    """The supervisor thread lives in the gunicorn worker of ``moorage broker``."""
    services = {"redis_admin_url": redis_server.admin_url, "postgres_admin_url": postgres_server.admin_url}
    settings = broker_settings(dedicated_data_dir, [MAIN_CATALOG], services=services)
    process = BrokerProcess(settings, settings_env(settings))
    process.start()
    osb = OsbClient(process.url)
    try:
        inst = Instance(osb, dedicated_data_dir)
        _, creds = inst.bind()
        app_client(creds["uri"]).set("k", "v")
        process.kill()  # Moorage dies; the app's Redis does not
        assert app_client(creds["uri"]).get("k") == "v"

        process.start()
        pid = read_pidfile(inst.server.pid_file)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: _answers(creds["uri"]), timeout=20, what="the new broker to restart the server")
        assert app_client(creds["uri"]).get("k") == "v"

        process.stop()  # a clean stop stops what Moorage started, as for the shared Redis ...
        assert not _answers(creds["uri"])
        process.start()  # ... and the next start brings it back with its data
        wait_for(lambda: _answers(creds["uri"]), timeout=20, what="the server to start with the broker")
        assert app_client(creds["uri"]).get("k") == "v"
    finally:
        osb.close()
        process.stop()


def test_parallel_binds_get_distinct_working_credentials(osb: OsbClient, dedicated_data_dir: Path) -> None:
    inst = Instance(osb, dedicated_data_dir)
    with ThreadPoolExecutor(10) as pool:
        bound = list(pool.map(lambda _: inst.bind(), range(10)))
    creds = [c for _, c in bound]
    assert len({c["password"] for c in creds}) == len({c["host"] for c in creds}) == 10
    for i, c in enumerate(creds):
        assert app_client(c["uri"]).set(f"k{i}", i)
    assert app_client(creds[0]["uri"]).dbsize() == 10


def test_plan_changes_apply_to_the_running_server_and_never_cross_to_shared(
    osb: OsbClient, dedicated_data_dir: Path
) -> None:
    inst = Instance(osb, dedicated_data_dir)
    _, cache_plan = osb.ids("redis", "dedicated-cache")
    _, shared_plan = osb.ids("redis", "shared")
    resp = osb.update(inst.id, {"service_id": inst.service_id, "plan_id": cache_plan})
    assert resp.status_code == 200, resp.text
    with inst.server.admin() as admin:
        assert admin.config_get("appendonly")["appendonly"] == "no"
    resp = osb.update(inst.id, {"service_id": inst.service_id, "parameters": {"maxmemory_mb": 4096}})
    assert resp.status_code == 400 and "maxmemory_mb" in resp.json()["description"]
    with inst.server.admin() as admin:
        assert admin.config_get("maxmemory")["maxmemory"] == str(64 * 1024 * 1024)
    resp = osb.update(inst.id, {"service_id": inst.service_id, "plan_id": shared_plan})
    assert resp.status_code == 422 and "cannot move" in resp.json()["description"], resp.text
    instance = osb.http.get(f"/v2/service_instances/{inst.id}").json()
    assert instance["plan_id"] == cache_plan
    assert inst.server.is_running()


def test_status_codes_of_every_endpoint_as_for_postgresql(osb: OsbClient, dedicated_data_dir: Path) -> None:
    sid, pid = osb.ids("redis", "dedicated")
    _, cache = osb.ids("redis", "dedicated-cache")
    iid, bid = new_id(), new_id()
    assert osb.provision(iid, sid, pid, {"maxmemory_mb": 32}).status_code == 201
    assert osb.provision(iid, sid, pid, {"maxmemory_mb": 32}).status_code == 200  # identical: 200
    assert osb.provision(iid, sid, pid, {"maxmemory_mb": 48}).status_code == 409  # different: 409
    assert osb.provision(iid, sid, cache).status_code == 409
    got = osb.http.get(f"/v2/service_instances/{iid}")
    assert got.status_code == 200 and got.json()["parameters"]["maxmemory_mb"] == 32
    assert osb.bind(iid, bid, sid, pid).status_code == 201
    assert osb.bind(iid, bid, sid, pid).status_code == 200
    assert osb.bind(iid, bid, sid, pid, {"read_only": True}).status_code == 400  # dedicated takes none
    assert osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}").status_code == 200
    assert osb.deprovision(iid, sid, pid).status_code == 400  # still bound
    assert osb.unbind(iid, bid, sid, pid).status_code == 200
    assert osb.unbind(iid, bid, sid, pid).status_code == 410
    assert osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}").status_code == 404
    assert osb.deprovision(iid, sid, pid).status_code == 200
    assert osb.deprovision(iid, sid, pid).status_code == 410
    assert osb.http.get(f"/v2/service_instances/{iid}").status_code == 404
    assert not list((dedicated_data_dir / INSTANCES_DIR).glob("*"))


def test_the_asynchronous_path_through_the_worker(make_dedicated_broker: Any, tmp_path: Path) -> None:
    folder = tmp_path / "async-catalog"
    folder.mkdir()
    data = yaml.safe_load((MAIN_CATALOG / "redis.yaml").read_text())
    for plan in data["plans"]:
        plan["asynchronous"] = True
    (folder / "redis.yaml").write_text(yaml.safe_dump(data))
    osb = make_dedicated_broker([folder]).client
    sid, pid = osb.ids("redis", "dedicated")
    iid, bid = new_id(), new_id()
    assert osb.provision(iid, sid, pid).status_code == 202
    assert osb.wait(iid).json()["state"] == "succeeded"
    assert osb.bind(iid, bid, sid, pid).status_code == 202
    assert osb.wait(iid, bid).json()["state"] == "succeeded"
    creds = osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}").json()["credentials"]
    assert app_client(creds["uri"]).incr("n") == 1
    assert osb.unbind(iid, bid, sid, pid).status_code == 202
    assert osb.wait(iid, bid).status_code == 410
    with pytest.raises((redis.AuthenticationError, redis.ConnectionError)):
        app_client(creds["uri"]).ping()
    assert osb.deprovision(iid, sid, pid).status_code == 202
    assert osb.wait(iid).status_code == 410


def test_a_pidfile_naming_another_instances_server_is_not_taken_for_a_running_server(
    osb: OsbClient, dedicated_data_dir: Path
) -> None:
    """After a reboot pids are handed out again: a stale pidfile may name another redis-server."""
    a, b = Instance(osb, dedicated_data_dir), Instance(osb, dedicated_data_dir)
    (_, ca), _ = a.bind(), b.bind()
    app_client(ca["uri"]).set("k", "v")
    pid_a, pid_b = read_pidfile(a.server.pid_file), read_pidfile(b.server.pid_file)
    assert pid_a is not None and pid_b is not None
    a.server.pid_file.write_text(f"{pid_b}\n")
    os.kill(pid_a, signal.SIGKILL)
    wait_for(lambda: _answers(ca["uri"]), timeout=20, what="instance a's server to be started again")
    assert app_client(ca["uri"]).get("k") == "v"
    assert read_pidfile(b.server.pid_file) == pid_b  # b's server was left alone
