"""The embedded PostgreSQL and Redis servers: restarts keep data, they never run as root.

Each test module gets its own servers (not the session ones), since these tests stop
and restart them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from moorage.embedded import EmbeddedPostgres, EmbeddedRedis
from moorage.embedded.processes import read_pidfile
from moorage.embedded.users import ServiceUser, check_reachable
from moorage.errors import ConfigurationError
from tests.fixtures.servers import make_server_dir

#: Expected refusals should fail at once, not after redis-py's retries with backoff.
NO_RETRY = Retry(NoBackoff(), 0)


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    path = make_server_dir("moorage-test-embedded-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pg(data_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(data_dir, durable=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rd(data_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(data_dir, durable=False)
    server.start()
    yield server
    server.stop()


def process_owner(pid: int) -> str:
    return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name


def test_postgres_keeps_its_data_and_port_across_a_restart(pg: EmbeddedPostgres) -> None:
    url = pg.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('before restart')")
    pg.stop()
    assert not pg.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)

    assert pg.start() == url  # same port, same password
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("before restart",)]


def test_postgres_start_reuses_a_running_server(pg: EmbeddedPostgres) -> None:
    pid = read_pidfile(pg.pgdata / "postmaster.pid")
    assert pg.start() == pg.admin_url
    assert read_pidfile(pg.pgdata / "postmaster.pid") == pid


def test_postgres_moves_to_a_free_port_when_its_own_is_taken(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir / "moved", durable=False)
    (data_dir / "moved").mkdir()
    (data_dir / "moved").chmod(0o711)
    first = server.start()
    old_port = server.port
    server.stop()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        try:
            second = server.start()
            assert server.port != old_port
            assert second != first
            with psycopg.connect(second) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            server.stop()


def test_postgres_runs_unprivileged_with_ssl_on_loopback_only(pg: EmbeddedPostgres) -> None:
    pid = read_pidfile(pg.pgdata / "postmaster.pid")
    assert pid is not None
    assert os.geteuid() == 0, (
        "the servers drop root to the moorage user: this test runs as root, like the suite"
    )
    assert process_owner(pid) == "moorage"
    with psycopg.connect(pg.admin_url, sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
    assert stat.S_IMODE(pg.password_file.stat().st_mode) == 0o600
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=pg.host, port=pg.port, user="moorage", password="wrong", dbname="postgres")


def test_redis_keeps_keys_and_acl_users_across_a_restart(rd: EmbeddedRedis) -> None:
    url = rd.start()
    admin = redis.Redis.from_url(url, decode_responses=True)
    admin.set("kept", "before restart")
    admin.execute_command("ACL", "SETUSER", "app1", "on", ">app-password", "~app1:*", "+@all")
    admin.execute_command("ACL", "SAVE")
    admin.close()
    rd.stop()
    assert not rd.is_running()

    assert rd.start() == url
    admin = redis.Redis.from_url(url, decode_responses=True)
    assert admin.get("kept") == "before restart"
    app = redis.Redis(host=rd.host, port=rd.port, username="app1", password="app-password")
    assert app.set("app1:x", 1)
    admin.execute_command("ACL", "DELUSER", "app1")


def test_redis_start_reuses_a_running_server(rd: EmbeddedRedis) -> None:
    pid = read_pidfile(rd.pid_file)
    assert rd.start() == rd.admin_url
    assert read_pidfile(rd.pid_file) == pid


def test_redis_runs_unprivileged_and_refuses_the_default_user(rd: EmbeddedRedis) -> None:
    pid = read_pidfile(rd.pid_file)
    assert pid is not None
    assert os.geteuid() == 0, (
        "the servers drop root to the moorage user: this test runs as root, like the suite"
    )
    assert process_owner(pid) == "moorage"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=rd.host, port=rd.port, retry=NO_RETRY).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=rd.host, port=rd.port, username="moorage", password="wrong", retry=NO_RETRY).ping()
    assert stat.S_IMODE(rd.password_file.stat().st_mode) == 0o600
    assert rd.password_file.read_text().strip() not in rd.acl_file.read_text()


def test_a_data_dir_the_service_user_cannot_reach_is_refused_before_anything_is_made(data_dir: Path) -> None:
    locked = data_dir / "locked"
    locked.mkdir(mode=0o700)
    nobody = ServiceUser(name="nobody", uid=65534, gid=65534)
    with pytest.raises(ConfigurationError, match=f"{locked} cannot be entered by the user 'nobody'"):
        check_reachable(locked / "data" / "postgres", nobody)
    check_reachable(locked / "missing" / "postgres", ServiceUser(name="me"))  # not dropping root: fine
    assert os.geteuid() == 0, (
        "the servers drop root to the moorage user: this test runs as root, like the suite"
    )
    with pytest.raises(ConfigurationError, match="cannot be entered by the user 'moorage'"):
        EmbeddedPostgres(locked / "data").start()
    assert list(locked.iterdir()) == []
