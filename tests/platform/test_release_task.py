"""Heroku's release phase through the controller, on the real local runtime and router.

A ``release:`` process type runs once per release, with that release's code and config,
before any of its processes start; if it fails, the release fails and the previous one
keeps serving.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.platform import LivePlatform, deploy_tarball, tar_of

WEB = "web: python3 -m http.server $PORT --bind 127.0.0.1\n"


@pytest.fixture
def journal() -> Iterator[Path]:
    """A file the release task (an unprivileged app uid) appends to, to show when it ran."""
    folder = Path(tempfile.mkdtemp(prefix="moorage-release-"))
    folder.chmod(0o777)
    yield folder / "journal"
    for item in folder.iterdir():
        item.unlink()
    folder.rmdir()


def _logs(lines: list[dict]) -> list[str]:
    return [line["log"] for line in lines if "log" in line]


def test_release_task_runs_before_the_deploy_with_the_new_config(
    live_platform: LivePlatform, journal: Path
) -> None:
    alice = live_platform.controller.user("alice")
    alice.post("/v2/apps", json={"id": "shop"})
    alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "first"}})
    release = f'release: echo "migrating for $GREETING from $(cat index.txt)" | tee -a {journal}\n'
    lines = deploy_tarball(alice, "shop", tar_of({"Procfile": WEB + release, "index.txt": "v-one"}))
    assert "result" in lines[-1], lines
    logs = _logs(lines)
    ran = logs.index("moorage[release]: migrating for first from v-one")
    deploying = next(i for i, line in enumerate(logs) if line.startswith("moorage[deploy]: deploying"))
    assert ran < deploying, logs
    assert live_platform.get("shop.moorage.localhost", "/index.txt") == (200, b"v-one")
    # A config change is a new release: the task runs again, with the new value.
    assert alice.post("/v2/apps/shop/config", json={"values": {"GREETING": "second"}}).status_code == 201
    assert journal.read_text().splitlines() == [
        "migrating for first from v-one",
        "migrating for second from v-one",
    ]
    # The task is not a process: it is never started by the formation, nor scalable.
    assert {p["type"] for p in alice.get("/v2/apps/shop/pods").json()["results"]} == {"web"}
    r = alice.post("/v2/apps/shop/scale", json={"release": 1})
    assert r.status_code == 400 and "cannot be scaled" in r.json()["message"]


def test_a_failing_release_task_fails_the_release_and_the_old_one_keeps_serving(
    live_platform: LivePlatform,
) -> None:
    alice = live_platform.controller.user("alice")
    alice.post("/v2/apps", json={"id": "shop"})
    first = deploy_tarball(alice, "shop", tar_of({"Procfile": WEB, "index.txt": "v-one"}))
    assert "result" in first[-1], first
    bad = WEB + 'release: echo "cannot reach the database" && exit 3\n'
    lines = deploy_tarball(alice, "shop", tar_of({"Procfile": bad, "index.txt": "v-two"}))
    assert "error" in lines[-1], lines
    message = lines[-1]["error"]["message"]
    assert "release task" in message and "exited with status 3" in message
    assert "previous release keeps serving" in message
    assert "moorage[release]: cannot reach the database" in _logs(lines)
    assert not any(line.startswith("moorage[deploy]: deploying") for line in _logs(lines))
    newest = alice.get("/v2/apps/shop/releases").json()["results"][0]
    assert newest["status"] == "failed"
    assert live_platform.get("shop.moorage.localhost", "/index.txt") == (200, b"v-one")


def test_config_values_and_commands_with_nul_are_refused(live_platform: LivePlatform) -> None:
    alice = live_platform.controller.user("alice")
    alice.post("/v2/apps", json={"id": "shop"})
    assert "result" in deploy_tarball(alice, "shop", tar_of({"Procfile": WEB, "index.txt": "x"}))[-1]
    before = len(alice.get("/v2/apps/shop/releases").json()["results"])
    r = alice.post("/v2/apps/shop/config", json={"values": {"A": "x\u0000y"}})
    assert r.status_code == 400 and "NUL" in r.json()["message"]
    assert len(alice.get("/v2/apps/shop/releases").json()["results"]) == before
    r = alice.post("/v2/apps/shop/run", json={"command": "echo a\u0000b"})
    assert r.status_code == 400 and "NUL" in r.json()["message"]
