"""Root never follows a link the service user planted next to an embedded server's files.

The servers run as the unprivileged ``moorage`` user; code running as that user (a
compromised redis-server or mariadbd) may put symlinks anywhere it can write. Each test
plants, as that user, a link to a root-owned file in every place root writes on a
(re)start, restarts the server, and checks the target is untouched. Runs as root, like
the suite.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.embedded import EmbeddedPostgres, EmbeddedRedis
from moorage.embedded.mariadb import EmbeddedMariaDB
from moorage.embedded.redis_instance import InstanceServer, ServerSettings
from moorage.embedded.users import ServiceUser, service_user
from tests.fixtures.servers import make_server_dir


@pytest.fixture
def server_dir() -> Iterator[Path]:
    path = make_server_dir("moorage-test-links-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A root file the attacker wants changed (its folder is root's only)."""
    path = tmp_path / "victim"
    path.write_text("precious\n")
    path.chmod(0o644)
    return path


def plant(user: ServiceUser, target: Path, *links: Path) -> list[Path]:
    """``ln -sf target link`` as the service user for each link; the links it could make."""
    made = []
    for link in links:
        proc = subprocess.run(
            ["ln", "-sfn", str(target), str(link)],
            user=user.uid,
            group=user.gid,
            capture_output=True,
            check=False,
        )
        if proc.returncode == 0:
            made.append(link)
    return made


def assert_untouched(victim: Path) -> None:
    st = victim.stat()
    assert victim.read_text() == "precious\n"
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)


def test_a_dedicated_redis_restart_follows_no_planted_link(server_dir: Path, victim: Path) -> None:
    user = service_user()
    server = InstanceServer(server_dir / "redis-instances" / "r-test")
    server.create(ServerSettings(persistence=True, maxmemory_mb=16, maxmemory_policy="noeviction"))
    try:
        names = ["redis.conf", "users.acl", "settings.json", "addresses.json", "port", "redis.log", ".lock"]
        candidates = [server.base / f"{n}.tmp" for n in names] + [
            server.base / "redis.log",
            server.base / ".lock",
        ]
        candidates += [server.data / "users.acl.tmp", server.data / "redis.pid"]
        server.stop()
        made = plant(user, victim, *candidates)
        assert made == [server.data / "users.acl.tmp", server.data / "redis.pid"]  # the rest is root's
        assert server.ensure_running()
        server.reconfigure(ServerSettings(persistence=True, maxmemory_mb=24, maxmemory_policy="noeviction"))
        server.address_for("b-one")
        assert_untouched(victim)
        with server.admin() as client:
            assert client.config_get("maxmemory")["maxmemory"] == str(24 * 1024 * 1024)
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        assert server.password_file.stat().st_uid == 0  # the server never reads it
    finally:
        server.destroy()


def test_an_embedded_mariadb_restart_follows_no_planted_link(server_dir: Path, victim: Path) -> None:
    user = service_user()
    mdb = EmbeddedMariaDB(server_dir, durable=False)
    mdb.start()
    try:
        names = ["my.cnf", "init.sql", "port", "server.key", "server.crt"]
        candidates = [mdb.base / f"{n}.tmp" for n in names] + [mdb.base / ".lock"]
        candidates += [mdb.log_file, mdb.pid_file]
        mdb.stop()
        made = plant(user, victim, *candidates)
        assert made == [mdb.log_file, mdb.pid_file]  # the rest is root's
        mdb.start()
        assert_untouched(victim)
        assert (
            mdb.password_file.stat().st_uid == 0 and stat.S_IMODE(mdb.password_file.stat().st_mode) == 0o600
        )
    finally:
        mdb.stop()


def test_the_shared_redis_restart_follows_no_planted_link(server_dir: Path, victim: Path) -> None:
    user = service_user()
    server = EmbeddedRedis(server_dir, durable=False)
    server.start()
    try:
        server.stop()
        names = ["redis.conf", "users.acl", "port", "redis.log", ".lock"]
        candidates = [server.base / f"{n}.tmp" for n in names] + [
            server.base / "redis.log",
            server.base / ".lock",
        ]
        candidates += [server.data / "users.acl.tmp", server.pid_file]
        made = plant(user, victim, *candidates)
        assert made == [server.data / "users.acl.tmp", server.pid_file]  # the rest is root's
        server.start()
        assert_untouched(victim)
        assert server.password_file.stat().st_uid == 0
    finally:
        server.stop()


def test_the_embedded_postgres_restart_follows_no_planted_link(server_dir: Path, victim: Path) -> None:
    user = service_user()
    server = EmbeddedPostgres(server_dir, durable=False)
    server.start()
    try:
        server.stop()
        names = ["superuser-password", "port", ".lock"]
        candidates = [server.base / f"{n}.tmp" for n in names] + [server.base / ".lock"]
        candidates += [server.pgdata / "moorage.conf", server.pgdata / "moorage.conf.tmp"]
        made = plant(user, victim, *candidates)
        assert made == [server.pgdata / "moorage.conf", server.pgdata / "moorage.conf.tmp"]
        server.start()
        assert_untouched(victim)
    finally:
        server.stop()
