"""Per-app locks hold across controller processes sharing one state (PostgreSQL and SQLite).

The other controller is a real second process: a Python child building its own
:class:`Platform` (its own engine and connections) on the same state, taking an app's
lock the way a controller's build or config change does, and holding it until told to
let go — or until it is killed. The controller under test serves the real API; the locks
are its own bookkeeping, so it runs on ``InertRuntime`` (no processes).
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from moorage.settings import Settings
from moorage.store.apps import DEPLOYING, FAILED, App, Release
from moorage.store.db import Database
from tests.fixtures.platform import (
    Cli,
    InertRuntime,
    deploy_tarball,
    platform_settings_for,
    serve_controller,
    tar_of,
)
from tests.platform.test_git_push import commit_app, git
from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]

#: The other controller process: holds ``argv[3]``'s lock as alice until stdin closes.
HOLDER = """
import sys, time
from pathlib import Path
from moorage.platform.controller.context import Platform, Principal
from moorage.settings import Settings
from moorage.store.db import Database

data_dir, url, name, what, long = sys.argv[1:6]
settings = Settings(data_dir=Path(data_dir), database_url=url)
platform = Platform(settings=settings, db=Database(settings.state_url), runtime=None, encryptor=None)
alice = Principal(id=0, username="alice", is_admin=False)
with platform.app_lock(name, alice, what, long=long == "long"):
    print("held", flush=True)
    sys.stdin.readline()
    print("releasing", time.time(), flush=True)
"""


class OtherController:
    """A second controller process holding one lock of the shared state."""

    def __init__(self, settings: Settings, name: str, what: str, long: bool) -> None:
        args = [str(settings.data_dir), settings.database_url, name, what, "long" if long else "short"]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "held\n"

    def release(self) -> float:
        """Let go; the wall-clock time just before the lock was released."""
        out, _ = self.proc.communicate("\n", timeout=30)
        word, when = out.split()
        assert word == "releasing"
        return float(when)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture(params=["postgresql", "sqlite"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of a shared state: a fresh PostgreSQL database, or SQLite in the data dir."""
    settings = platform_settings_for(tmp_path / "data", app_lock_wait_seconds=2.0)
    if request.param == "postgresql":
        settings = dataclasses.replace(settings, database_url=request.getfixturevalue("postgres_database"))
    return settings


@pytest.fixture
def ctl(state: Settings) -> Iterator:
    with serve_controller(state, InertRuntime()) as controller:
        alice = controller.user("alice")
        for app in ("shop", "cart"):
            assert alice.post("/v2/apps", json={"id": app}).status_code == 201
        yield controller


@pytest.fixture
def other(state: Settings) -> Iterator:
    """Start another controller's hold on a lock: ``other("shop", "config:set", long=False)``."""
    started: list[OtherController] = []

    def start(name: str, what: str, long: bool) -> OtherController:
        started.append(OtherController(state, name, what, long))
        return started[-1]

    yield start
    for holder in started:
        holder.stop()


def set_config(client, app: str, value: str):  # type: ignore[no-untyped-def]
    return client.post(f"/v2/apps/{app}/config", json={"values": {"A": value}})


def test_a_build_elsewhere_refuses_deploys_and_changes_of_that_app_at_once(ctl, other):
    alice = ctl.user("alice")
    build = other("shop", "a build of 1a2b3c4", long=True)
    started = time.monotonic()
    r = set_config(alice, "shop", "1")
    assert time.monotonic() - started < 2.0  # refused, not queued behind the build
    assert r.status_code == 409
    message = r.json()["message"]
    assert message.startswith("a deploy of shop is in progress (started by alice at ")
    assert message.endswith(" UTC, a build of 1a2b3c4); try again when it finishes")
    lines = deploy_tarball(alice, "shop", tar_of({"Procfile": "web: python3 x.py\n"}))
    assert lines[-1]["error"]["code"] == "conflict"
    assert lines[-1]["error"]["message"] == message
    # Other apps are not held up, and nothing of shop changed.
    assert set_config(alice, "cart", "1").status_code == 201
    assert alice.get("/v2/apps/shop/config").json()["values"] == {}
    build.release()
    assert set_config(alice, "shop", "1").status_code == 201


def test_a_quick_change_waits_for_one_in_another_process(ctl, other):
    alice = ctl.user("alice")
    change = other("shop", "config:set", long=False)
    answered: list[tuple[float, int]] = []

    def change_it() -> None:
        status = set_config(alice, "shop", "2").status_code
        answered.append((time.time(), status))

    request = threading.Thread(target=change_it)
    request.start()
    request.join(timeout=0.5)  # the absence of an answer cannot be polled for
    assert request.is_alive(), answered
    released = change.release()
    request.join(timeout=30)
    assert answered and answered[0][1] == 201
    assert answered[0][0] >= released  # it waited for the other change
    assert alice.get("/v2/apps/shop/config").json()["values"] == {"A": "2"}


def test_a_quick_change_is_refused_when_the_other_outlasts_the_wait(ctl, other):
    alice = ctl.user("alice")
    other("shop", "ps:restart", long=False)
    started = time.monotonic()
    r = set_config(alice, "shop", "3")
    assert time.monotonic() - started >= 2.0  # app_lock_wait_seconds
    assert r.status_code == 409
    assert r.json()["message"].startswith("a change of shop is in progress (started by alice at ")
    assert "UTC, ps:restart); try again" in r.json()["message"]


def test_a_killed_holder_releases_the_lock(ctl, other):
    alice = ctl.user("alice")
    build = other("shop", "a build of 1a2b3c4", long=True)
    assert set_config(alice, "shop", "4").status_code == 409
    build.kill()
    wait_for(lambda: set_config(alice, "shop", "4").status_code == 201, what="the lock to be released")
    assert alice.get("/v2/apps/shop/config").json()["values"] == {"A": "4"}


def test_who_holds_the_lock_is_told_only_to_those_who_may_use_the_app(ctl, other):
    mallory = ctl.user("mallory")
    other("shop", "a build of 1a2b3c4", long=True)
    r = set_config(mallory, "shop", "5")
    assert r.status_code == 409
    assert r.json()["message"] == "another change of shop is in progress; try again when it finishes"
    ctl.user("alice").post("/v2/apps/shop/perms", json={"username": "mallory"})
    assert "started by alice" in set_config(mallory, "shop", "5").json()["message"]


def test_the_cli_shows_the_refusal(ctl, other, tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    cli = Cli(home=home, cwd=work, url=ctl.url)
    cli.ok("login", ctl.url, "--username", "alice", "--password", "correct-horse")
    other("shop", "a build of 1a2b3c4", long=True)
    result = cli("config:set", "A=6", "-a", "shop")
    assert result.exit_code != 0
    assert "a deploy of shop is in progress (started by alice at " in result.output
    assert "a build of 1a2b3c4); try again when it finishes" in result.output
    assert "alice added A -> cart v2" in cli.ok("config:set", "A=6", "-a", "cart")


def test_a_starting_controller_leaves_the_deploy_of_another_alone(ctl, other, state):
    alice = ctl.user("alice")
    for app in ("shop", "cart"):
        lines = deploy_tarball(alice, app, tar_of({"Procfile": "web: python3 x.py\n"}))
        assert lines[-1]["result"]["version"] == 2
    db = Database(state.state_url)
    with db.unit_of_work() as s:  # shop's v2 is deploying in another controller; cart's was cut short
        for rel in s.scalars(select(Release).where(Release.version == 2)):
            rel.status = DEPLOYING
    other("shop", "a build of 1a2b3c4", long=True)
    runtime = InertRuntime()
    with serve_controller(state, runtime) as again:
        again.flask_app.extensions["moorage.resume"].join(timeout=30)
    with db.sessions() as s:
        query = select(App.name, Release.status).join(App, App.id == Release.app_id)
        status = {name: rel_status for name, rel_status in s.execute(query.where(Release.version == 2))}
    db.dispose()
    assert status == {"shop": DEPLOYING, "cart": FAILED}
    assert "shop" not in runtime.deployed  # nor redeployed behind the other controller's back


def test_a_git_push_during_a_build_elsewhere_is_refused_and_changes_nothing(ctl, other, tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    alice = Cli(home=home, cwd=work, url=ctl.url).logged_in_as("alice")
    commit_app(alice, "first")
    alice.ok("git:remote", "-a", "shop")
    other("shop", "a build of 1a2b3c4", long=True)
    push = git(alice, "push", "moorage", "main", check=False)
    assert push.returncode != 0
    assert "a deploy of shop is in progress (started by alice at " in push.stderr, push.stderr
    assert "a build of 1a2b3c4); try again when it finishes" in push.stderr
    assert "refs/heads/main" not in git(alice, "ls-remote", "moorage").stdout
    assert [r["version"] for r in ctl.user("alice").get("/v2/apps/shop/releases").json()["results"]] == [1]
