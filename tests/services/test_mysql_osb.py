"""The mysql offering over the OSB API: lifecycle, every endpoint's status codes, isolation, load.

The broker is built as ``moorage broker`` builds it, with the main catalog and the
session's real MariaDB; the credentials it hands out are used with PyMySQL. An
asynchronous copy of the offering sends every step through 202 and ``last_operation``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pymysql
import pytest
import yaml

from tests.fixtures.broker import MAIN_CATALOG, OsbClient, RunningBroker, new_id
from tests.fixtures.mysql import connect
from tests.fixtures.servers import RunningServer


@pytest.fixture
def mysql_broker(make_broker: Callable[..., RunningBroker], mysql_server: RunningServer) -> RunningBroker:
    return make_broker([MAIN_CATALOG], services={"mysql_admin_url": mysql_server.admin_url})


@pytest.fixture
def async_mysql_broker(
    make_broker: Callable[..., RunningBroker], mysql_server: RunningServer, tmp_path: Path
) -> RunningBroker:
    folder = tmp_path / "async-catalog"
    folder.mkdir()
    data = yaml.safe_load((MAIN_CATALOG / "mysql.yaml").read_text())
    for plan in data["plans"]:
        plan["asynchronous"] = True
    (folder / "mysql.yaml").write_text(yaml.safe_dump(data))
    return make_broker([folder], services={"mysql_admin_url": mysql_server.admin_url})


def schema_exists(server: RunningServer, database: str) -> bool:
    with connect(server.admin_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
        return cur.fetchone() is not None


def use(uri: str) -> int:
    """Create a table if needed, add a row, return the row count: the credentials really work."""
    with connect(uri) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS visits (id INT AUTO_INCREMENT PRIMARY KEY, who VARCHAR(40))")
        cur.execute("INSERT INTO visits (who) VALUES (CURRENT_USER())")
        cur.execute("SELECT count(*) FROM visits")
        return int(cur.fetchone()[0])


def lifecycle(broker: RunningBroker, server: RunningServer, asynchronous: bool) -> None:
    osb = broker.client
    sid, pid = osb.ids("mysql", "shared-small")
    iid, bid = new_id(), new_id()
    resp = osb.provision(iid, sid, pid, {"collation": "utf8mb4_bin"}, accepts_incomplete=asynchronous)
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
    assert {"uri", "username", "password", "host", "port", "database", "jdbcUrl"} <= set(creds)
    assert creds["uri"].startswith(f"mysql://{creds['username']}:")
    assert body["endpoints"] == [{"host": creds["host"], "ports": [str(creds["port"])], "protocol": "tcp"}]
    assert use(creds["uri"]) == 1
    held = connect(creds["uri"])  # open across the unbind
    resp = osb.unbind(iid, bid, sid, pid, accepts_incomplete=asynchronous)
    assert resp.status_code == (202 if asynchronous else 200)
    assert osb.wait(iid, bid).status_code == 410
    with pytest.raises(pymysql.OperationalError):
        connect(creds["uri"])
    with pytest.raises(pymysql.OperationalError), held.cursor() as cur:
        cur.execute("SELECT count(*) FROM visits")  # killed by the unbind
    held.close()
    resp = osb.deprovision(iid, sid, pid, accepts_incomplete=asynchronous)
    assert resp.status_code == (202 if asynchronous else 200)
    assert osb.wait(iid).status_code == 410
    assert not schema_exists(server, creds["database"])


def test_mysql_lifecycle_sync(mysql_broker: RunningBroker, mysql_server: RunningServer) -> None:
    lifecycle(mysql_broker, mysql_server, asynchronous=False)


def test_mysql_lifecycle_async(async_mysql_broker: RunningBroker, mysql_server: RunningServer) -> None:
    lifecycle(async_mysql_broker, mysql_server, asynchronous=True)


def test_every_endpoint_answers_as_for_postgresql(mysql_broker: RunningBroker) -> None:
    osb = mysql_broker.client
    sid, pid = osb.ids("mysql", "shared-small")
    _, large = osb.ids("mysql", "shared-large")
    iid, bid = new_id(), new_id()
    assert osb.last_operation(iid).status_code == 404
    assert osb.http.get(f"/v2/service_instances/{iid}").status_code == 404
    assert osb.provision(iid, sid, pid, {}).status_code == 201
    assert osb.provision(iid, sid, pid, {}).status_code == 200
    assert osb.provision(iid, sid, large, {}).status_code == 409
    fetched = osb.http.get(f"/v2/service_instances/{iid}")
    assert fetched.status_code == 200 and fetched.json()["plan_id"] == pid
    assert osb.last_operation(iid, bid).status_code == 404

    created = osb.bind(iid, bid, sid, pid, {})
    assert created.status_code == 201, created.text
    again = osb.bind(iid, bid, sid, pid, {})
    assert again.status_code == 200 and again.json()["credentials"] == created.json()["credentials"]
    assert osb.bind(iid, bid, sid, pid, {}, bind_resource={"app_guid": "another-app"}).status_code == 409
    got = osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}")
    assert got.status_code == 200 and got.json()["credentials"] == created.json()["credentials"]
    assert osb.bind(new_id(), new_id(), sid, pid, {}).status_code == 400  # unknown instance

    refused = osb.deprovision(iid, sid, pid)
    assert refused.status_code == 400 and "unbind" in refused.json()["description"]
    changed = osb.update(iid, {"service_id": sid, "plan_id": large, "parameters": {"connection_limit": 50}})
    assert changed.status_code == 200, changed.text
    assert use(created.json()["credentials"]["uri"]) == 1  # the binding outlives the plan change

    assert osb.unbind(iid, bid, sid, pid).status_code == 200
    assert osb.unbind(iid, bid, sid, pid).status_code == 410
    assert osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}").status_code == 404
    assert osb.deprovision(iid, sid, large).status_code == 200
    assert osb.deprovision(iid, sid, large).status_code == 410
    assert osb.last_operation(iid).status_code == 410
    assert osb.deprovision(new_id(), sid, pid).status_code == 410


@pytest.mark.parametrize(
    ("parameters", "needle"),
    [
        ({"connection_limit": 21}, "connection_limit"),
        ({"connection_limit": "many"}, "connection_limit"),
        ({"collation": "latin1_swedish_ci"}, "collation"),
        ({"max_memory": 5}, "max_memory"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter_and_create_nothing(
    mysql_broker: RunningBroker, mysql_server: RunningServer, parameters: dict, needle: str
) -> None:
    osb = mysql_broker.client
    sid, pid = osb.ids("mysql", "shared-small")
    iid = new_id()
    before = databases(mysql_server)
    resp = osb.provision(iid, sid, pid, parameters)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["description"]
    assert osb.last_operation(iid).status_code == 404
    assert databases(mysql_server) == before


def databases(server: RunningServer) -> set[str]:
    with connect(server.admin_url) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return {row[0] for row in cur.fetchall()}


def test_bindings_of_instance_a_cannot_reach_instance_b(mysql_broker: RunningBroker) -> None:
    osb = mysql_broker.client
    sid, pid = osb.ids("mysql", "shared-small")
    a, b = new_id(), new_id()
    assert osb.provision(a, sid, pid, {}).status_code == 201
    assert osb.provision(b, sid, pid, {}).status_code == 201
    creds_a = osb.bind(a, new_id(), sid, pid, {}).json()["credentials"]
    creds_b = osb.bind(b, new_id(), sid, pid, {}).json()["credentials"]
    assert creds_a["database"] != creds_b["database"]
    use(creds_b["uri"])
    with pytest.raises(pymysql.OperationalError):
        connect(creds_a["uri"].rsplit("/", 1)[0] + "/" + creds_b["database"])
    with connect(creds_a["uri"]) as conn, conn.cursor() as cur, pytest.raises(pymysql.MySQLError):
        cur.execute(f"SELECT count(*) FROM `{creds_b['database']}`.visits")


def test_fifty_parallel_binds_give_fifty_working_distinct_users(mysql_broker: RunningBroker) -> None:
    osb = mysql_broker.client
    sid, pid = osb.ids("mysql", "shared-large")
    iid = new_id()
    assert osb.provision(iid, sid, pid, {}).status_code == 201
    bids = [new_id() for _ in range(50)]

    def bind(bid: str) -> dict:
        client = OsbClient(mysql_broker.url)
        try:
            resp = client.bind(iid, bid, sid, pid, {})
            assert resp.status_code == 201, resp.text
            return resp.json()["credentials"]
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(bind, bids))
    assert len({c["username"] for c in results}) == 50
    assert len({c["password"] for c in results}) == 50
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda c: use(c["uri"]), results))
    with connect(results[0]["uri"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT who FROM visits")
        writers = {row[0] for row in cur.fetchall()}
    assert writers == {f"{c['username']}@%" for c in results}  # every user wrote its own row
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda bid: osb_unbind(mysql_broker, iid, bid, sid, pid), bids))
    assert statuses == [200] * 50
    assert osb.deprovision(iid, sid, pid).status_code == 200


def osb_unbind(broker: RunningBroker, iid: str, bid: str, sid: str, pid: str) -> int:
    client = OsbClient(broker.url)
    try:
        return client.unbind(iid, bid, sid, pid).status_code
    finally:
        client.close()
