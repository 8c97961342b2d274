"""Builds of different apps cannot see each other: each app builds as its own uid.

Two apps build at the same time; each one's buildpack knows exactly where the other's
work folder is (they meet in a shared folder) and tries to read its config vars and
write into its build and cache. The uids are the ones the controller allocated for the
apps (on their rows; see ``controller.app_uids``) and passes to every build.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import threading
from pathlib import Path

import pytest

from moorage.platform.builder import Builder, BuildResult
from moorage.platform.identity import AppUser
from tests.fixtures.builder import BuildLog, world_dir

NOBODY = AppUser("nobody", 65534, 65534, "nogroup", drop=True)
#: Uids as the controller hands them out (no account has them).
UIDS = {"iso-a": 47101, "iso-b": 47102, "legacy": 47103}
RELEASE = '#!/bin/bash\necho "---"; echo "default_process_types:"; echo "  web: true"\n'

# {meet}: the shared folder; {me}/{other}: this app's and the other app's names.
SNOOP = r"""#!/bin/bash
meet={meet}
echo "$(dirname "$1")" > "$meet/{me}.work"
wait_for() {{
  for _ in $(seq 1 600); do [ -e "$1" ] && return 0; sleep 0.1; done
  echo "gave up waiting for $1"; exit 1
}}
wait_for "$meet/{other}.work"
other=$(cat "$meet/{other}.work")
echo "uid=$(id -u)"
echo "work=$(stat -c '%a:%u:%g' "$(dirname "$1")")"
echo "mine=$(stat -c '%a:%u' "$1" "$2" "$3" "$HOME" "$TMPDIR" | sort -u | tr '\n' ' ')"
if v=$(cat "$other/env/SECRET" 2>&1); then echo "read other env: $v"; else echo "read other env: denied"; fi
if ls "$other" >/dev/null 2>&1; then echo "list other work: allowed"; else echo "list other work: denied"; fi
for sub in build cache home tmp; do
  if touch "$other/$sub/planted" 2>/dev/null; then echo "write other $sub: allowed"; else echo "write other $sub: denied"; fi
done
touch "$meet/{me}.done"
wait_for "$meet/{other}.done"
"""


def buildpack(root: Path, compile_script: str) -> Path:
    (root / "bin").mkdir(parents=True)
    for name, body in (
        ("detect", "#!/bin/bash\necho Snoop\n"),
        ("compile", compile_script),
        ("release", RELEASE),
    ):
        (root / "bin" / name).write_text(body)
        (root / "bin" / name).chmod(0o755)
    root.chmod(0o755)
    (root / "bin").chmod(0o755)
    return root


@pytest.fixture
def shared():
    folder = world_dir("moorage-isolation-test-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def app(tmp_path) -> Path:
    source = tmp_path / "app"
    source.mkdir()
    (source / "hello.txt").write_text("hi\n")
    return source


def _free(uid: int) -> int:
    with pytest.raises(KeyError):
        pwd.getpwuid(uid)
    return uid


def build_all(builder: Builder, jobs: dict[str, tuple[Path, dict[str, str]]]) -> dict[str, BuildLog]:
    """Build several apps at once (one thread each); every build must succeed."""
    logs = {name: BuildLog() for name in jobs}
    errors: dict[str, BaseException] = {}

    def run(name: str, source: Path, env: dict[str, str]) -> BuildResult | None:
        try:
            return builder.build(name, source, env, logs[name], uid=_free(UIDS[name]))
        except BaseException as e:  # reported below with the build's output
            errors[name] = e
            return None

    threads = [threading.Thread(target=run, args=(n, s, e)) for n, (s, e) in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a build did not finish"
    assert not errors, {n: (repr(e), logs[n].text) for n, e in errors.items()}
    return logs


def value(log: BuildLog, key: str) -> str:
    [line] = [ln for ln in log.lines if ln.startswith(key + "=")]
    return line.split("=", 1)[1]


def test_builds_of_two_apps_at_once_cannot_reach_each_other(make_builder, app, shared, builder_data_dir):
    assert os.geteuid() == 0, "build isolation is about uids: this test runs as root, like the suite"
    meet = shared / "meet"
    meet.mkdir()
    meet.chmod(0o1777)
    packs = {
        me: buildpack(shared / me, SNOOP.format(meet=meet, me=me, other=other))
        for me, other in (("iso-a", "iso-b"), ("iso-b", "iso-a"))
    }
    builder = make_builder()

    logs = build_all(
        builder,
        {
            "iso-a": (app, {"BUILDPACK_URL": str(packs["iso-a"]), "SECRET": "a-secret-password"}),
            "iso-b": (app, {"BUILDPACK_URL": str(packs["iso-b"]), "SECRET": "b-secret-password"}),
        },
    )

    uids = {}
    for name, log in logs.items():
        assert "read other env: denied" in log.lines, log.text
        assert "list other work: denied" in log.lines, log.text
        for sub in ("build", "cache", "home", "tmp"):
            assert f"write other {sub}: denied" in log.lines, log.text
        assert "secret-password" not in log.text
        uid = int(value(log, "uid"))
        uids[name] = uid
        # The work folder is root's, entered only by this app's group; its own folders are 0700.
        assert value(log, "work") == f"710:0:{uid}"
        assert value(log, "mine").split() == [f"700:{uid}"]
    assert uids == {"iso-a": UIDS["iso-a"], "iso-b": UIDS["iso-b"]}

    # A build given no uid (not from the controller) runs as run_as_user, never as root.
    again = buildpack(shared / "again", '#!/bin/bash\necho "uid=$(id -u)"\n')
    log = BuildLog()
    make_builder().build("iso-a", app, {"BUILDPACK_URL": str(again)}, log)
    assert int(value(log, "uid")) == NOBODY.uid


def test_a_cache_kept_by_the_old_shared_build_user_is_given_to_the_app(
    make_builder, app, shared, builder_data_dir
):
    assert os.geteuid() == 0, "build isolation is about uids: this test runs as root, like the suite"
    old = builder_data_dir / "build-cache" / "legacy"
    (old / "deps").mkdir(parents=True)
    (old / "count").write_text("5\n")
    for path in (old, old / "deps", old / "count"):
        os.chown(path, NOBODY.uid, NOBODY.gid)
        path.chmod(0o700 if path.is_dir() else 0o600)
    pack = buildpack(
        shared / "counter",
        '#!/bin/bash\nset -eu\necho "uid=$(id -u)"\necho "cache=$(cat "$2/count")"\n'
        'echo 6 > "$2/count"\ntouch "$2/deps/new"\n',
    )

    log = BuildLog()
    make_builder().build("legacy", app, {"BUILDPACK_URL": str(pack)}, log, uid=_free(UIDS["legacy"]))

    uid = int(value(log, "uid"))
    assert uid == UIDS["legacy"]
    assert "cache=5" in log.lines
    assert (old / "count").read_text() == "6\n" and (old / "deps" / "new").exists()
    for path in [old, *old.rglob("*")]:
        assert path.lstat().st_uid == uid, path
    assert stat.S_IMODE(old.stat().st_mode) == 0o700
