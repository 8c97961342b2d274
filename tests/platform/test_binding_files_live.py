"""Bindings as files on the local runtime, end to end: real broker, PostgreSQL, Redis,
BigQuery (the local-bigquery emulator and the IAM stand-in), runtime and router.

The app (tests/apps/binding_reader) reads every file under its $SERVICE_BINDING_ROOT with
its own uid and reports them; the test checks them against the credentials the platform
holds (``config --reveal``), their owner and mode on disk, that another app's uid cannot
read them, and that rotation and rollback give the files of the credentials that stand.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.broker import MAIN_CATALOG, PASSWORD
from tests.fixtures.gcp import PROJECT, BigQueryEmulator
from tests.fixtures.platform import APPS_DIR, Cli, LivePlatform, run_live_platform
from tests.fixtures.servers import RunningServer
from tests.gcp.iam_standin import IamStandIn

HOST = "shop.moorage.localhost"


@pytest.fixture
def live(
    make_broker: Any,
    postgres_server: RunningServer,
    redis_server: RunningServer,
    mysql_server: RunningServer,
    gcp_credentials: Path,
    bigquery_emulator: BigQueryEmulator,
    iam_standin: IamStandIn,
) -> Iterator[LivePlatform]:
    broker = make_broker(
        [MAIN_CATALOG],
        services={
            "postgres_admin_url": postgres_server.admin_url,
            "redis_admin_url": redis_server.admin_url,
            "mysql_admin_url": mysql_server.admin_url,
        },
        gcp={
            "project": PROJECT,
            "bigquery_endpoint": bigquery_emulator.url,
            "iam_endpoint": iam_standin.url,
            "resource_manager_endpoint": iam_standin.url,
        },
    )
    with run_live_platform(broker={"port": broker.settings.broker.port, "password": PASSWORD}) as platform:
        yield platform


@pytest.fixture
def cli(live: LivePlatform, tmp_path: Path) -> Cli:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return Cli(home=home, cwd=work, url=live.controller.url).logged_in_as("alice")


def deploy(cli: Cli, name: str) -> None:
    """Create and deploy the app from a folder of its own (``apps:create`` remembers the app there)."""
    home, folder = cli.cwd, cli.cwd / name
    shutil.copytree(APPS_DIR / "binding_reader", folder)
    cli.cwd = folder
    try:
        cli.ok("apps:create", name)
        cli.ok("deploy")
    finally:
        cli.cwd = home


def seen(live: LivePlatform) -> dict[str, Any]:
    status, body = live.get(HOST, "/")
    assert status == 200, body[:300]
    return json.loads(body)


def credentials(cli: Cli) -> dict[str, dict[str, Any]]:
    """Binding name → credentials, as the platform holds them (``config --reveal``)."""
    vcap = json.loads(json.loads(cli.ok("config", "--json", "--reveal", "-a", "shop"))["VCAP_SERVICES"])
    return {entry["binding_name"]: entry["credentials"] for group in vcap.values() for entry in group}


@pytest.mark.slow
def test_files_for_postgres_redis_and_bigquery_follow_the_release(live: LivePlatform, cli: Cli) -> None:
    deploy(cli, "shop")
    deploy(cli, "other")
    cli.ok("services:create", "postgresql", "shared-small", "db")
    cli.ok("services:create", "redis", "shared", "cache")
    cli.ok("services:create", "gcp-bigquery", "standard", "warehouse")
    for service in ("db", "cache", "warehouse"):
        cli.ok("services:bind", service, "-a", "shop")

    view = seen(live)
    root = Path(view["env"]["SERVICE_BINDING_ROOT"])
    held = credentials(cli)
    files = view["files"]
    assert sorted(files) == ["bigquery", "database", "redis"]
    assert (files["database"]["type"], files["redis"]["type"], files["bigquery"]["type"]) == (
        "postgresql", "redis", "gcp-bigquery",
    )  # fmt: skip
    assert {f["provider"] for f in files.values()} == {"moorage"}
    for name, creds in held.items():
        expected = {k: v if isinstance(v, str) else json.dumps(v) for k, v in creds.items() if v is not None}
        assert {k: v for k, v in files[name].items() if k not in ("type", "provider")} == expected
    assert files["database"]["password"] and files["database"]["uri"].startswith("postgres")
    key = json.loads(files["bigquery"]["credentials"])
    assert key["client_email"] == held["bigquery"]["email"]
    assert view["env"]["GOOGLE_APPLICATION_CREDENTIALS"] == str(root / "bigquery" / "credentials")
    assert view["env"]["GOOGLE_CLOUD_PROJECT"] == PROJECT
    assert view["env"]["BIGQUERY_DATASET"] == held["bigquery"]["dataset_id"]

    # Only the app's uid: folders 0500, files 0400, owned by the uid its processes run as.
    uid = live.uid_of("shop")
    assert view["uid"] == uid != live.uid_of("other")
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        assert info.st_uid == uid, path
        assert stat.S_IMODE(info.st_mode) == (0o500 if path.is_dir() else 0o400), path
    for folder in (root.parent, root.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o711 and folder.stat().st_uid == os.geteuid()
    refused = cli("run", "-a", "other", "--", f"cat {root}/database/password; ls {root}")
    assert refused.exit_code != 0 and "Permission denied" in refused.output
    assert files["database"]["password"] not in refused.output
    own = cli.ok("run", "-a", "shop", "--", "cat $SERVICE_BINDING_ROOT/database/password")
    assert files["database"]["password"] in own

    # Rotation: a new release whose files hold the new password; the old folder is gone.
    before = cli.ok("releases", "--json", "-a", "shop")
    cli.ok("services:rotate", "db", "-a", "shop")
    rotated = seen(live)
    new_root = Path(rotated["env"]["SERVICE_BINDING_ROOT"])
    assert new_root != root and not root.exists()
    assert rotated["files"]["database"]["password"] == credentials(cli)["database"]["password"]
    assert rotated["files"]["database"]["password"] != files["database"]["password"]
    assert rotated["files"]["bigquery"] == files["bigquery"] and rotated["files"]["redis"] == files["redis"]

    # Unbind: the release without Redis has no redis folder.
    cli.ok("services:unbind", "cache", "-a", "shop")
    unbound = seen(live)
    assert sorted(unbound["files"]) == ["bigquery", "database"]

    # Rollback to the release before the rotation: its files are back — with the
    # credentials that stand now, never the rotated-away password or the unbound Redis.
    version = json.loads(before)[0]["version"]
    cli.ok("rollback", f"v{version}", "-a", "shop")
    back = seen(live)
    assert sorted(back["files"]) == ["bigquery", "database"]
    assert back["files"]["database"] == rotated["files"]["database"]
    assert Path(back["env"]["SERVICE_BINDING_ROOT"]).name != new_root.name
    assert not new_root.exists()
