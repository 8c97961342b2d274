"""Redis ``dedicated`` end to end: a Node app on ioredis 4, deployed, bound, curled through the router.

The app (tests/apps/redis_ioredis4) is built by the real nodejs buildpack from a
package-lock.json that pins ioredis 4.28.5, which logs in with ``AUTH <password>`` only,
and writes keys without any prefix, as Bull does. The broker is Moorage's own with the
real catalog, its dedicated instances in a data dir the service user can reach.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from moorage.embedded.redis_instance import INSTANCES_DIR
from tests.fixtures.broker import PASSWORD, RunningBroker
from tests.fixtures.platform import APPS_DIR, Cli, LivePlatform, run_live_platform

HOST = "queue.moorage.localhost"
WORKER = "worker.moorage.localhost"


@pytest.fixture
def live(make_dedicated_broker: Callable[[], RunningBroker]) -> Iterator[LivePlatform]:
    broker = make_dedicated_broker()
    with run_live_platform(
        builder=None, broker={"port": broker.settings.broker.port, "password": PASSWORD}
    ) as live:
        yield live


@pytest.fixture
def cli(live: LivePlatform, tmp_path: Path) -> Cli:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return Cli(home=home, cwd=work, url=live.controller.url).logged_in_as("alice")


def get(live: LivePlatform, path: str, host: str = HOST) -> dict[str, Any]:
    status, body = live.get(host, path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def client(**kwargs: Any) -> redis.Redis:
    return redis.Redis(decode_responses=True, socket_timeout=5, retry=Retry(NoBackoff(), 0), **kwargs)


@pytest.mark.slow
def test_an_ioredis4_app_uses_a_dedicated_redis_without_knowing_about_prefixes(
    live: LivePlatform, cli: Cli, dedicated_data_dir: Path
) -> None:
    shutil.copytree(APPS_DIR / "redis_ioredis4", cli.cwd, dirs_exist_ok=True)
    for app in ("queue", "worker"):
        cli.ok("apps:create", app)
        cli.ok("deploy", "-a", app)
    result = cli("services:create", "redis", "dedicated", "big", "-p", '{"maxmemory_mb": 100000}')
    assert result.exit_code == 1 and "maxmemory_mb" in result.output
    assert not (dedicated_data_dir / INSTANCES_DIR).exists()  # no server was created for it
    assert "maxmemory_policy (string)" in cli.ok("marketplace", "redis")
    assert "jobs is ready" in cli.ok("services:create", "redis", "dedicated", "jobs")
    assert "REDIS_URL" in cli.ok("services:bind", "jobs", "-a", "queue")

    assert [get(live, "/count")["hits"] for _ in range(3)] == [1, 2, 3]
    assert get(live, "/whoami") == {"user": "default", "client": "4.28.5"}  # password-only AUTH
    env = json.loads(cli.ok("config", "--json", "--reveal"))
    assert env["REDIS_URL"] == f"redis://:{env['REDIS_PASSWORD']}@{env['REDIS_HOST']}:{env['REDIS_PORT']}"
    assert "REDIS_KEY_PREFIX" not in env

    # The username form reaches the same key space; that connection stays open for later.
    named = client(
        host=env["REDIS_HOST"],
        port=int(env["REDIS_PORT"]),
        username=env["REDIS_USERNAME"],
        password=env["REDIS_PASSWORD"],
    )
    assert named.get("hits") == "3" and named.llen("bull:work:wait") == 3
    plain = redis.Redis.from_url(env["REDIS_URL"], retry=Retry(NoBackoff(), 0))  # password only
    assert plain.llen("bull:work:wait") == 3 and plain.acl_whoami() == "default"

    # A second binding (another app) has its own secret and address, and sees the same keys.
    cli.ok("services:bind", "jobs", "-a", "worker")
    other = json.loads(cli.ok("config", "-a", "worker", "--json", "--reveal"))
    assert other["REDIS_PASSWORD"] != env["REDIS_PASSWORD"] and other["REDIS_HOST"] != env["REDIS_HOST"]
    assert get(live, "/count", WORKER)["hits"] == 4
    kept = client(host=other["REDIS_HOST"], port=int(other["REDIS_PORT"]), password=other["REDIS_PASSWORD"])
    assert kept.ping()

    cli.ok("services:unbind", "jobs", "-a", "queue")
    for old in (named, plain):  # the binding's open connections are closed ...
        with pytest.raises(redis.ConnectionError):
            old.get("hits")
    with pytest.raises((redis.AuthenticationError, redis.ConnectionError)):  # ... and its secret refused
        client(host=env["REDIS_HOST"], port=int(env["REDIS_PORT"]), password=env["REDIS_PASSWORD"]).ping()

    assert kept.get("hits") == "4"  # the other binding's open connection was left alone
    assert get(live, "/count", WORKER)["hits"] == 5

    cli.ok("services:bind", "jobs", "-a", "queue")  # a new binding: new secret, the data kept
    assert get(live, "/count") == {"hits": 6, "queued": 6}
    again = json.loads(cli.ok("config", "--json", "--reveal"))
    assert again["REDIS_PASSWORD"] != env["REDIS_PASSWORD"]
