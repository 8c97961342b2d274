"""Apps cannot read each other's files, and an app re-created under a used name starts clean.

Issue 10's security finding: a process of app B (its own uid) could list and read app
A's release (source code, installed packages, committed secrets). Here two users each
deploy an app with the real buildpack builder on the real LocalRuntime behind nginx; a
one-off process of B then tries to list and read every file Moorage keeps for A —
release, slug, build cache, log, scratch folder — by their exact paths. A keeps serving
through the router and reads its own files. Destroying A removes all of them and frees
its uid; an app of the same name made afterwards (by another user) gets another uid.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from moorage.platform.controller import app_uids
from moorage.store.apps import AppUid
from tests.fixtures.platform import LivePlatform, deploy_tarball, run_live_platform, tar_of

APPS = Path(__file__).resolve().parents[1] / "apps"
SECRET = "a-committed-secret-of-app-a"


@pytest.fixture(scope="module")
def live() -> Iterator[LivePlatform]:
    assert os.geteuid() == 0, "isolation is about uids: this test runs as root, like the suite"
    with run_live_platform(builder=None, platform={"deploy_timeout_seconds": 30.0}) as platform:
        yield platform


def upload(extra: dict[str, str] | None = None) -> bytes:
    files: dict[str, str | bytes] = {
        p.relative_to(APPS / "echo").as_posix(): p.read_bytes()
        for p in (APPS / "echo").rglob("*")
        if p.is_file()
    }
    return tar_of({**files, **(extra or {})})


def deploy(client: httpx.Client, app: str, files: bytes) -> None:
    assert client.post("/v2/apps", json={"id": app}).status_code == 201
    lines = deploy_tarball(client, app, files)
    assert "result" in lines[-1], lines[-12:]


def run(client: httpx.Client, app: str, command: str) -> str:
    r = client.post(f"/v2/apps/{app}/run", json={"command": command})
    assert r.status_code == 200, r.text
    assert r.json()["exit_code"] == 0, r.json()
    return r.json()["output"]


def probe(paths: list[Path]) -> str:
    """A shell command printing, for each path, whether it can be listed or read."""
    lines = []
    for path in paths:
        p = shlex.quote(str(path))
        test = f"ls {p}" if path.is_dir() else f"head -c1 {p}"
        lines.append(f'if {test} >/dev/null 2>&1; then echo "allowed {path}"; else echo "denied {path}"; fi')
    return "\n".join(lines)


def files_of(data_dir: Path, app: str) -> list[Path]:
    """Everything Moorage keeps for ``app``: folders and one file inside each."""
    release = data_dir / "releases" / app / "v2"
    [slug] = (data_dir / "slugs" / app).glob("*.tgz")
    cache = data_dir / "build-cache" / app
    kept = cache / "kept"  # the Procfile buildpack caches nothing: give the cache a file of the app's
    kept.write_text("cached\n")
    os.chown(kept, cache.stat().st_uid, cache.stat().st_gid)
    return [
        data_dir / "releases",
        data_dir / "releases" / app,
        release,
        release / "secret_settings.py",
        release / "server.py",
        slug.parent,
        slug,
        cache,
        kept,
        data_dir / "logs" / f"{app}.log",
        data_dir / "tmp" / app,
        data_dir / "tmp" / app / "note",
    ]


def test_an_app_can_neither_list_nor_read_another_apps_files_while_both_run(live: LivePlatform) -> None:
    alice, bob = live.controller.user("alice"), live.controller.user("bob")
    deploy(alice, "iso-a", upload({"secret_settings.py": f"SECRET_KEY = {SECRET!r}\n"}))
    deploy(bob, "iso-b", upload())
    run(alice, "iso-a", 'echo "scratch of a" > "$TMPDIR/note"')
    data_dir = live.controller.settings.data_dir
    paths = files_of(data_dir, "iso-a")
    assert all(p.exists() for p in paths)  # as root: everything is there to be found

    uid_a, uid_b = live.uid_of("iso-a"), live.uid_of("iso-b")
    assert uid_a != uid_b and min(uid_a, uid_b) >= app_uids.FIRST_UID
    out = run(bob, "iso-b", f"echo uid=$(id -u)\n{probe(paths)}")
    assert f"uid={uid_b}" in out.splitlines()
    assert [line for line in out.splitlines() if line.startswith("allowed")] == []
    assert sorted(line.split(" ", 1)[1] for line in out.splitlines()[1:]) == sorted(map(str, paths))
    assert SECRET not in out

    # A is untouched: it serves through the router and reads its own release and scratch.
    status, _ = live.get("iso-a.moorage.localhost")
    assert status == 200
    own = run(alice, "iso-a", 'echo uid=$(id -u); cat secret_settings.py "$TMPDIR/note"')
    assert own.splitlines() == [f"uid={uid_a}", f"SECRET_KEY = {SECRET!r}", "scratch of a"]
    # And it cannot change its own release (it is immutable), only its scratch folder.
    tamper = alice.post("/v2/apps/iso-a/run", json={"command": "echo x >> server.py"}).json()
    assert tamper["exit_code"] != 0 and "Permission denied" in tamper["output"]


def test_a_destroyed_app_leaves_nothing_and_its_name_comes_back_with_another_uid(live: LivePlatform) -> None:
    alice, carol = live.controller.user("alice"), live.controller.user("carol")
    deploy(alice, "iso-re", upload({"secret_settings.py": f"SECRET_KEY = {SECRET!r}\n"}))
    run(alice, "iso-re", 'echo "left by the old app" > "$TMPDIR/note"')
    # Files in the machine's shared scratch folders, outside Moorage's own.
    run(
        alice,
        "iso-re",
        "echo x > /tmp/iso-re-note; mkdir -p /var/tmp/iso-re-dir/sub; echo x > /dev/shm/iso-re-shm",
    )
    foreign = Path(tempfile.mkdtemp(prefix="iso-re-root-"))  # root's, in /tmp: not the app's to lose
    left = [Path("/tmp/iso-re-note"), Path("/var/tmp/iso-re-dir"), Path("/dev/shm/iso-re-shm")]
    assert all(p.exists() for p in left)
    data_dir = live.controller.settings.data_dir
    old_uid = live.uid_of("iso-re")
    kept = [
        data_dir / "releases" / "iso-re",
        data_dir / "slugs" / "iso-re",
        data_dir / "build-cache" / "iso-re",
        data_dir / "logs" / "iso-re.log",
        data_dir / "tmp" / "iso-re",
        data_dir / "git" / "iso-re.git",
    ]
    (data_dir / "git" / "iso-re.git").mkdir(parents=True, exist_ok=True)  # as a git push makes it

    assert alice.delete("/v2/apps/iso-re").status_code == 204

    assert [p for p in kept if p.exists()] == []
    assert [p for p in left if p.exists()] == []
    assert foreign.is_dir()
    foreign.rmdir()
    platform = live.controller.flask_app.extensions["moorage.platform"]
    with platform.db.sessions() as s:
        ledger = s.get(AppUid, old_uid)
        assert ledger is not None and ledger.app == "iso-re" and ledger.freed_at is not None

    deploy(carol, "iso-re", upload())
    new_uid = live.uid_of("iso-re")
    assert new_uid > old_uid
    out = run(carol, "iso-re", 'echo uid=$(id -u); ls -A; ls -A "$TMPDIR"; echo end')
    lines = out.splitlines()
    assert lines[0] == f"uid={new_uid}"
    assert "secret_settings.py" not in lines and "note" not in lines, lines
    owned_by_old = [p for p in data_dir.rglob("*") if p.lstat().st_uid == old_uid]
    assert owned_by_old == []
