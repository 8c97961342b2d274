"""A Django app written for MySQL, deployed end to end: git push, buildpack, release phase, router.

The app (tests/apps/django_mysql) is written as Cloud Foundry's MySQL Django sample is:
``mysqlclient`` (compiled in the build against Debian's libmariadb), ``dj-database-url``
reading ``DATABASE_URL=mysql://…``, and ``python manage.py migrate`` as its release phase.
The services come from a real broker on the session's MariaDB and PostgreSQL; a second
database of another kind must be bound under an alias.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.fixtures.broker import MAIN_CATALOG, PASSWORD
from tests.fixtures.mysql import connect
from tests.fixtures.platform import APPS_DIR, Cli, LivePlatform, run_live_platform
from tests.fixtures.servers import RunningServer

pytestmark = pytest.mark.slow

HOST = "guestbook.moorage.localhost"


@pytest.fixture
def live(
    make_broker: Any, mysql_server: RunningServer, postgres_server: RunningServer
) -> Iterator[LivePlatform]:
    broker = make_broker(
        [MAIN_CATALOG],
        services={"mysql_admin_url": mysql_server.admin_url, "postgres_admin_url": postgres_server.admin_url},
    )
    with run_live_platform(
        builder=None,
        broker={"port": broker.settings.broker.port, "password": PASSWORD},
        platform={"deploy_timeout_seconds": 60.0},
    ) as platform:
        yield platform


def git(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Real git in the user's checkout, with the user's HOME (where the CLI keeps its login)."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Alice",
        "GIT_AUTHOR_EMAIL": "alice@example.com",
        "GIT_COMMITTER_NAME": "Alice",
        "GIT_COMMITTER_EMAIL": "alice@example.com",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"git {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def get(live: LivePlatform, path: str) -> dict[str, Any]:
    status, body = live.get(HOST, path)
    assert status == 200, (path, status, body[:500])
    return json.loads(body)


def test_django_mysql_app_deploys_migrates_and_serves(live: LivePlatform, tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    shutil.copytree(APPS_DIR / "django_mysql", work)
    cli = Cli(home=home, cwd=work, url=live.controller.url).logged_in_as("alice")
    cli.ok("apps:create", "guestbook")
    assert "entries is ready" in cli.ok("services:create", "mysql", "shared-small", "entries")
    assert "DATABASE_URL" in cli.ok("services:bind", "entries", "-a", "guestbook")
    config = json.loads(cli.ok("config", "-a", "guestbook", "--json", "--reveal"))
    assert config["DATABASE_URL"].startswith("mysql://")
    assert {"DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME"} <= set(
        config
    )

    git(work, home, "init", "--quiet", "--initial-branch=main")
    git(work, home, "add", "--all")
    git(work, home, "commit", "--quiet", "-m", "guestbook")
    cli.ok("git:remote", "-a", "guestbook")
    push = git(work, home, "push", "moorage", "main")
    assert "remote: -----> Python (Django) app detected" in push.stderr, push.stderr
    assert "Running release command" in push.stderr or "Applying guestbook.0001_initial... OK" in push.stderr

    page = get(live, "/")
    assert page["vendor"] == "mysql" and page["driver"].startswith("MySQLdb")  # mysqlclient
    assert page["database"] == config["DATABASE_NAME"]
    assert page["user"] == f"{config['DATABASE_USER']}@%"
    assert "MariaDB" in page["version"] and page["entries"] == 0
    assert [get(live, f"/sign?name=guest{i}")["entries"] for i in range(3)] == [1, 2, 3]
    with connect(config["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM guestbook_entry ORDER BY id")  # made by the release phase's migrate
        assert [row[0] for row in cur.fetchall()] == ["guest0", "guest1", "guest2"]

    # A PostgreSQL database too: DATABASE_* is taken, so it needs an alias.
    cli.ok("services:create", "postgresql", "shared-small", "reports")
    refused = cli("services:bind", "reports", "-a", "guestbook")
    assert refused.exit_code == 1 and "--as" in refused.output
    cli.ok("services:bind", "reports", "-a", "guestbook", "--as", "REPORTS")
    both = json.loads(cli.ok("config", "-a", "guestbook", "--json", "--reveal"))
    assert both["REPORTS_URL"].startswith("postgres://") and both["DATABASE_URL"] == config["DATABASE_URL"]
    assert get(live, "/")["entries"] == 3

    # Unbinding the MySQL database revokes the app's user at once; the new release has no DATABASE_URL.
    cli.ok("services:unbind", "entries", "-a", "guestbook")
    with pytest.raises(pymysql.OperationalError):
        connect(config["DATABASE_URL"])
    assert get(live, "/")["vendor"] == "sqlite"
