"""The bridge end to end through the CLI: real broker, PostgreSQL, Redis, runtime and router.

The test app (tests/apps/svc_store) stores a row through DATABASE_URL and counts through
REDIS_URL; the real buildpack builder installs its psycopg and redis (requirements.txt)
into its slug, as for any user's app.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fixtures.broker import MAIN_CATALOG, PASSWORD, BrokerProcess, broker_settings, settings_env
from tests.fixtures.platform import APPS_DIR, Cli, LivePlatform, run_live_platform
from tests.fixtures.router import Load
from tests.fixtures.servers import RunningServer

HOST = "shop.moorage.localhost"


@pytest.fixture
def services(
    postgres_server: RunningServer, redis_server: RunningServer, mysql_server: RunningServer
) -> dict[str, str]:
    return {
        "postgres_admin_url": postgres_server.admin_url,
        "redis_admin_url": redis_server.admin_url,
        "mysql_admin_url": mysql_server.admin_url,
    }


@pytest.fixture
def live(make_broker: Any, services: dict[str, str]) -> Iterator[LivePlatform]:
    broker = make_broker([MAIN_CATALOG], services=services)
    # The real buildpack builder: the app's dependencies are installed into its slug, as
    # for any user's app (the test's own interpreter may not be runnable by app users).
    with run_live_platform(
        builder=None, broker={"port": broker.settings.broker.port, "password": PASSWORD}
    ) as platform:
        yield platform


@pytest.fixture
def cli(live: LivePlatform, tmp_path: Path) -> Cli:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return Cli(home=home, cwd=work, url=live.controller.url).logged_in_as("alice")


def deploy_app(cli: Cli, name: str = "shop") -> None:
    cli.ok("apps:create", name)
    shutil.copytree(APPS_DIR / "svc_store", cli.cwd, dirs_exist_ok=True)
    cli.ok("config:set", "GREETING=hello")  # a var of the user's own: never masked
    cli.ok("deploy")


def get(live: LivePlatform, path: str, host: str = HOST) -> dict[str, Any]:
    status, body = live.get(host, path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def revealed(cli: Cli) -> dict[str, str]:
    return json.loads(cli.ok("config", "--json", "--reveal"))


def cannot_connect(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError:
        return True
    return False


@pytest.mark.slow
def test_create_bind_use_unbind_rebind_rotate(live: LivePlatform, cli: Cli) -> None:
    deploy_app(cli)
    market = cli.ok("marketplace")
    assert "postgresql" in market and "redis" in market
    assert "connection_limit (integer)" in cli.ok("marketplace", "postgresql")

    # Refused parameters leave nothing behind: the name is free at once (issue 16).
    result = cli("services:create", "postgresql", "shared-small", "db", "-p", '{"connection_limit": 500}')
    assert result.exit_code == 1, result.output
    assert result.output.endswith(
        "Error: invalid parameter 'connection_limit': 500 is greater than the maximum of 20\n"
    )
    assert json.loads(cli.ok("services", "--json")) == []
    assert "db is ready" in cli.ok("services:create", "postgresql", "shared-small", "db")
    assert "cache is ready" in cli.ok("services:create", "redis", "shared", "cache")
    out = cli.ok("services:bind", "db", "-a", "shop")
    assert "DATABASE_URL" in out and "-> v4" in out
    cli.ok("services:bind", "cache", "-a", "shop")
    listing = json.loads(cli.ok("services", "--json"))
    assert {(s["name"], s["service"], s["state"], tuple(s["apps"])) for s in listing} == {
        ("db", "postgresql", "ready", ("shop",)),
        ("cache", "redis", "ready", ("shop",)),
    }

    # The app works with both.
    assert get(live, "/db")["rows"] == 1
    assert [get(live, "/counter")["counter"] for _ in range(2)] == [1, 2]
    env = get(live, "/")["vars"]
    assert {"DATABASE_URL", "DATABASE_PASSWORD", "REDIS_URL", "VCAP_SERVICES"} <= set(env)
    masked = json.loads(cli.ok("config", "--json"))
    assert masked["DATABASE_URL"] == "********" and masked["GREETING"] == "hello"
    first = revealed(cli)
    assert first["DATABASE_URL"].startswith("postgres://")
    assert sorted(json.loads(first["VCAP_SERVICES"])) == ["postgresql", "redis"]
    result = cli("config:set", "DATABASE_URL=postgres://elsewhere/db")
    assert result.exit_code == 1 and "--force" in result.output

    # Unbind: the vars leave the app's environment and the old password stops working.
    out = cli.ok("services:unbind", "db", "-a", "shop")
    assert "DATABASE_URL" in out
    env = get(live, "/")["vars"]
    assert not any(v.startswith("DATABASE_") for v in env) and "REDIS_URL" in env
    assert cannot_connect(first["DATABASE_URL"])
    assert get(live, "/counter")["counter"] == 3

    # Rebind: new credentials, the data is still there.
    cli.ok("services:bind", "db", "-a", "shop")
    assert get(live, "/db")["rows"] == 2
    second = revealed(cli)
    assert second["DATABASE_PASSWORD"] != first["DATABASE_PASSWORD"]

    # Rotate under continuous load: no failed request, new credentials, old ones dead.
    failures: list[str] = []
    users: set[str] = set()
    stop = threading.Event()

    def hammer(path: str) -> None:
        while not stop.is_set():
            try:
                status, body = live.get(HOST, path)
            except Exception as exc:  # a refused or reset connection is a failed request
                failures.append(repr(exc))
                continue
            if status != 200:
                failures.append(f"{status} {body[:200]!r}")
            elif path == "/db":
                users.add(json.loads(body)["user"])

    threads = [threading.Thread(target=hammer, args=(p,)) for p in ("/db", "/counter")]
    for t in threads:
        t.start()
    try:
        assert "Rotated" in cli.ok("services:rotate", "db", "-a", "shop")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    third = revealed(cli)
    assert third["DATABASE_USER"] != second["DATABASE_USER"]
    assert third["DATABASE_USER"] in users and get(live, "/db")["user"] == third["DATABASE_USER"]
    assert cannot_connect(second["DATABASE_URL"])
    assert not cannot_connect(third["DATABASE_URL"])

    # A second PostgreSQL: refused under the same names, distinct and working with --as.
    cli.ok("services:create", "postgresql", "shared-small", "analytics")
    result = cli("services:bind", "analytics", "-a", "shop")
    assert result.exit_code == 1 and "--as" in result.output
    cli.ok("services:bind", "analytics", "-a", "shop", "--as", "ANALYTICS")
    both = revealed(cli)
    assert both["ANALYTICS_URL"] != both["DATABASE_URL"]
    assert both["DATABASE_URL"] == third["DATABASE_URL"]
    assert get(live, "/db?var=ANALYTICS_URL")["rows"] == 1
    assert get(live, "/db")["rows"] >= 3

    # Destroying the app unbinds everything at the broker.
    cli.ok("apps:destroy", "--confirm", "shop")
    assert cannot_connect(both["ANALYTICS_URL"]) and cannot_connect(both["DATABASE_URL"])
    assert json.loads(cli.ok("services:info", "db", "--json"))["bindings"] == []
    cli.ok("services:destroy", "db", "--confirm", "db")
    assert "db" not in cli.ok("services")


@pytest.mark.slow
def test_a_second_broker_process_is_usable_like_the_builtin_one(
    live: LivePlatform, cli: Cli, services: dict[str, str], tmp_path: Path
) -> None:
    settings = broker_settings(tmp_path / "other-broker", [MAIN_CATALOG], services=services)
    process = BrokerProcess(settings, settings_env(settings))
    process.start()
    try:
        out = cli.ok("brokers:add", "other", process.url, "--username", "moorage", "--password", PASSWORD)
        assert "Registered other:" in out and "postgresql, redis" in out
        brokers = json.loads(cli.ok("brokers", "--json"))
        assert [(b["name"], b["builtin"]) for b in brokers] == [("moorage", True), ("other", False)]
        result = cli("services:create", "redis", "shared", "counter")
        assert result.exit_code == 1 and "--broker" in result.output
        cli.ok("services:create", "redis", "shared", "counter", "--broker", "other")
        deploy_app(cli)
        cli.ok("services:bind", "counter", "-a", "shop")
        assert [get(live, "/counter")["counter"] for _ in range(2)] == [1, 2]
        assert json.loads(cli.ok("services:info", "counter", "--json"))["broker"] == "other"
        result = cli("brokers:remove", "other")
        assert result.exit_code == 1 and "destroy them first" in result.output
        cli.ok("services:destroy", "counter", "--unbind", "--confirm", "counter")
        assert "REDIS_URL" not in get(live, "/")["vars"]
        cli.ok("brokers:remove", "other")
    finally:
        process.stop()


@pytest.mark.slow
@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "new-connections"])
def test_rotate_under_load_loses_no_request(live: LivePlatform, cli: Cli, keep_alive: bool) -> None:
    """Issue 12: rotation (a new release, processes replaced) through the router with and without keep-alive."""
    deploy_app(cli)
    cli.ok("services:create", "postgresql", "shared-small", "db")
    cli.ok("services:bind", "db", "-a", "shop")
    before = get(live, "/db")["user"]
    with Load(live.router.port, HOST, keep_alive) as load:
        assert "Rotated" in cli.ok("services:rotate", "db", "-a", "shop")
    assert load.failures == []
    assert get(live, "/db")["user"] != before
