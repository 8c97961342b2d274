"""The embedded MariaDB: restarts keep data and port, unprivileged, SSL, loopback; the entry point starts it.

The module has its own server (not the session one), since these tests stop and restart it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from moorage.broker.embedded import start_embedded
from moorage.catalog.loader import load_catalog
from moorage.embedded import EmbeddedMariaDB
from moorage.embedded.processes import read_pidfile
from moorage.settings import Settings
from tests.fixtures.mysql import ROOT, connect
from tests.fixtures.servers import make_server_dir
from tests.polling import wait_for


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    path = make_server_dir("moorage-test-mariadb-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def mdb(data_dir: Path) -> Iterator[EmbeddedMariaDB]:
    server = EmbeddedMariaDB(data_dir, durable=False)
    server.start()
    yield server
    server.stop()


def variables(url: str, *names: str) -> dict[str, str]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + ", ".join(["%s"] * len(names)) + ")", names
        )
        return {k: v for k, v in cur.fetchall()}


def test_keeps_its_data_and_port_across_a_restart(mdb: EmbeddedMariaDB) -> None:
    url = mdb.start()
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS kept")
        cur.execute("CREATE TABLE IF NOT EXISTS kept.t (v VARCHAR(20))")
        cur.execute("INSERT INTO kept.t VALUES ('before restart')")
    mdb.stop()
    assert not mdb.is_running()
    with pytest.raises(pymysql.OperationalError):
        connect(url)
    assert mdb._password() not in mdb.init_file.read_text(), "only the password's hash is kept there"

    assert mdb.start() == url  # same port, same password
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT v FROM kept.t")
        assert cur.fetchall() == (("before restart",),)


def test_a_killed_mariadbd_is_started_again_with_its_data(mdb: EmbeddedMariaDB) -> None:
    url = mdb.start()
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS survivor")
        cur.execute("CREATE TABLE IF NOT EXISTS survivor.t (v VARCHAR(20)) ENGINE=InnoDB")
        cur.execute("INSERT INTO survivor.t VALUES ('committed')")
    pid = read_pidfile(mdb.pid_file)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: read_pidfile(mdb.pid_file) not in (None, pid) and mdb.is_running(),
        timeout=60,
        what="mariadbd-safe to start mariadbd again",
    )
    with connect(url) as conn, conn.cursor() as cur:  # same port, same admin password
        cur.execute("SELECT v FROM survivor.t")
        assert cur.fetchall() == (("committed",),)


def test_start_reuses_a_running_server(mdb: EmbeddedMariaDB) -> None:
    pid = read_pidfile(mdb.pid_file)
    assert mdb.start() == mdb.admin_url
    assert read_pidfile(mdb.pid_file) == pid


def test_runs_unprivileged_with_ssl_on_loopback_only(mdb: EmbeddedMariaDB) -> None:
    pid = read_pidfile(mdb.pid_file)
    assert pid is not None
    owner = pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name
    assert os.geteuid() == 0, "the server drops to its own user: this test runs as root, like the suite"
    assert owner == "moorage"
    with connect(mdb.admin_url, ssl={"check_hostname": False}) as conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cur.fetchone()[1] != ""
    assert variables(mdb.admin_url, "bind_address", "local_infile", "have_ssl") == {
        "bind_address": "127.0.0.1",
        "local_infile": "OFF",
        "have_ssl": "YES",
    }
    assert stat.S_IMODE(mdb.password_file.stat().st_mode) == 0o600
    assert mdb.password_file.stat().st_uid == os.geteuid()  # the server never reads it
    assert stat.S_IMODE(mdb.base.stat().st_mode) == 0o711  # root's: the server writes in run/ and data/
    assert mdb.base.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(mdb.run_dir.stat().st_mode) == 0o700  # the socket's folder
    with pytest.raises(pymysql.OperationalError) as refused:
        pymysql.connect(host=mdb.host, port=mdb.port, user="moorage", password="wrong", connect_timeout=5)
    assert refused.value.args[0] == 1045
    with pytest.raises(pymysql.OperationalError):
        pymysql.connect(host=mdb.host, port=mdb.port, user="root", password="", connect_timeout=5)


def test_the_broker_entry_point_starts_it_for_a_catalog_with_mysql(tmp_path: Path) -> None:
    data_dir = make_server_dir("moorage-test-mariadb-entry-")
    try:
        catalog = load_catalog([ROOT / "catalog"])
        settings = Settings(data_dir=data_dir).with_group(
            services={"postgres_admin_url": "postgresql://unused", "redis_admin_url": "redis://unused"}
        )
        started_settings, servers = start_embedded(settings, catalog)
        try:
            assert [s for s in servers if isinstance(s, EmbeddedMariaDB)] != []
            url = started_settings.services.mysql_admin_url
            assert url.startswith("mysql://moorage:")
            connect(url).close()
        finally:
            for server in servers:
                server.stop()
        configured = settings.with_group(services={"mysql_admin_url": url})
        _, others = start_embedded(configured, catalog)
        for server in others:
            server.stop()
        assert not any(isinstance(s, EmbeddedMariaDB) for s in others), "an admin URL means: start no MariaDB"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
