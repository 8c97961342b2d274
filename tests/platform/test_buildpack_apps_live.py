"""The builder's test apps deployed through the controller and curled through the router.

Issue 4's end-to-end check: each app is uploaded to a controller that builds with the
real buildpack builder, released (the ``release:`` task runs in the release phase),
started by the local runtime under the app's own uid, and reached through nginx by
its host name. Failed builds say why and add no release.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.builder import write_buildpack
from tests.fixtures.platform import LivePlatform, deploy_tarball, run_live_platform, tar_of

pytestmark = pytest.mark.slow

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture(scope="module")
def live() -> Iterator[LivePlatform]:
    with run_live_platform(builder=None, platform={"deploy_timeout_seconds": 30.0}) as platform:
        yield platform


@pytest.fixture(scope="module")
def alice(live: LivePlatform) -> httpx.Client:
    return live.controller.user("alice")


def tarball(app: str, changes: dict[str, str] | None = None) -> bytes:
    """tests/apps/<app> as an upload, with some files replaced or added."""
    files: dict[str, str | bytes] = {
        path.relative_to(APPS / app).as_posix(): path.read_bytes()
        for path in sorted((APPS / app).rglob("*"))
        if path.is_file()
    }
    return tar_of({**files, **(changes or {})})


def deployed(alice: httpx.Client, app: str, upload: bytes, config: dict[str, str] | None = None) -> list[str]:
    """Create ``app`` (with ``config``), deploy ``upload``; the output lines of a success."""
    assert alice.post("/v2/apps", json={"id": app}).status_code == 201
    if config:
        assert alice.post(f"/v2/apps/{app}/config", json={"values": config}).status_code == 201
    lines = deploy_tarball(alice, app, upload)
    assert "result" in lines[-1], lines[-12:]
    return [line.get("log", "") for line in lines]


def test_flask_app(live: LivePlatform, alice: httpx.Client) -> None:
    logs = deployed(alice, "flask", tarball("bp_flask"))
    assert "-----> Python app detected" in logs
    status, body = live.get("flask.moorage.localhost")
    assert status == 200 and body.startswith(b"hello from flask on 3."), body


def test_django_app_migrates_in_the_release_phase_and_serves(live: LivePlatform, alice: httpx.Client) -> None:
    folder = Path(tempfile.mkdtemp(prefix="moorage-django-"))
    folder.chmod(0o777)  # the app's own uid creates the database file
    try:
        logs = deployed(
            alice, "django", tarball("bp_django"), {"DATABASE_URL": f"sqlite:///{folder}/db.sqlite3"}
        )
        assert "-----> Python (Django) app detected" in logs
        assert "moorage[release]:   Applying auth.0001_initial... OK" in logs
        assert live.get("django.moorage.localhost") == (200, b"django on sqlite: 0 users\n")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_express_app_without_procfile(live: LivePlatform, alice: httpx.Client) -> None:
    logs = deployed(alice, "express", tarball("bp_express"))
    assert "-----> Node.js app detected" in logs
    assert live.get("express.moorage.localhost") == (200, b"hello from express, built at build time\n")


def test_static_site(live: LivePlatform, alice: httpx.Client) -> None:
    deployed(alice, "static", tarball("bp_static"))
    status, body = live.get("static.moorage.localhost")
    assert status == 200 and b"<h1>" in body, body
    assert live.get("static.moorage.localhost", "/style.css") == (200, b"h1 { color: teal; }\n")
    assert live.get("static.moorage.localhost", "/logo.psd")[0] == 404  # .slugignore


def test_app_with_a_release_task(live: LivePlatform, alice: httpx.Client) -> None:
    logs = deployed(alice, "release", tarball("bp_release"))
    assert any(line.startswith("moorage[release]: migrating from ") for line in logs), logs
    assert live.get("release.moorage.localhost", "/index.txt") == (200, b"served by python's http.server\n")


@pytest.mark.parametrize(
    ("app", "changes", "reason"),
    [
        (
            "bad-reqs",
            {"requirements.txt": "flask==3.1.3\nthis is not a requirement\n"},
            "pip could not install",
        ),
        ("bad-pin", {"runtime.txt": "python-3.4.1\n"}, "runtime.txt asks for Python ==3.4.1"),
    ],
)
def test_failed_builds_say_why_and_add_no_release(
    live: LivePlatform, alice: httpx.Client, app: str, changes: dict[str, str], reason: str
) -> None:
    assert alice.post("/v2/apps", json={"id": app}).status_code == 201
    lines = deploy_tarball(alice, app, tarball("bp_flask", changes))
    assert "error" in lines[-1], lines[-5:]
    output = "\n".join(line.get("log", "") for line in lines) + lines[-1]["error"]["message"]
    assert reason in output
    assert [r["version"] for r in alice.get(f"/v2/apps/{app}/releases").json()["results"]] == [1]
    assert live.get(f"{app}.moorage.localhost")[0] == 404  # nothing was ever deployed


@pytest.fixture(scope="module")
def strict() -> Iterator[LivePlatform]:
    """A platform with a 4 s build timeout and a 1 MB slug limit."""
    with run_live_platform(
        builder=None, platform={"build_timeout_seconds": 4.0, "slug_max_mb": 1}
    ) as platform:
        yield platform


@pytest.fixture
def buildpacks() -> Iterator[Path]:
    """Two third-party buildpacks in a folder the apps' build uids can read."""
    folder = Path(tempfile.mkdtemp(prefix="moorage-live-bp-"))
    folder.chmod(0o755)
    write_buildpack(folder / "sleepy", "sleep 300")
    # 2 MB that gzip cannot shrink: the slug outgrows the 1 MB limit.
    write_buildpack(folder / "bloat", 'head -c 2000000 /dev/urandom > "$1/blob.bin"')
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    ("app", "buildpack", "reason"),
    [
        ("too-slow", "sleepy", "did not finish before the build timeout"),
        ("too-big", "bloat", "over the 1 MB limit"),
    ],
)
def test_build_timeout_and_slug_limit_say_why_and_add_no_release(
    strict: LivePlatform, buildpacks: Path, app: str, buildpack: str, reason: str
) -> None:
    alice = strict.controller.user("alice")
    assert alice.post("/v2/apps", json={"id": app}).status_code == 201
    config = {"BUILDPACK_URL": str(buildpacks / buildpack)}
    assert alice.post(f"/v2/apps/{app}/config", json={"values": config}).status_code == 201
    lines = deploy_tarball(alice, app, tarball("bp_release"))
    assert "error" in lines[-1], lines[-5:]
    assert reason in lines[-1]["error"]["message"], lines[-1]
    assert [r["version"] for r in alice.get(f"/v2/apps/{app}/releases").json()["results"]] == [2, 1]
    assert alice.get(f"/v2/apps/{app}/builds").json()["results"] == []
