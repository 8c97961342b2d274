"""Builds of different apps cannot see each other: each app builds as its own uid.

Two apps build at the same time; each one's buildpack knows exactly where the other's
work folder is (they meet in a shared folder) and tries to read its config vars and
write into its build and cache. The uids come from the same table the local runtime
uses, so an app builds and runs as one uid, and keeps it from build to build.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from moorage.platform.builder import Builder, BuildResult
from moorage.platform.identity import AppUids, AppUser
from tests.fixtures.builder import BuildLog, world_dir

NOBODY = AppUser("nobody", 65534, 65534, "nogroup", drop=True)
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


def build_all(builder: Builder, jobs: dict[str, tuple[Path, dict[str, str]]]) -> dict[str, BuildLog]:
    """Build several apps at once (one thread each); every build must succeed."""
    logs = {name: BuildLog() for name in jobs}
    errors: dict[str, BaseException] = {}

    def run(name: str, source: Path, env: dict[str, str]) -> BuildResult | None:
        try:
            return builder.build(name, source, env, logs[name])
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
    assert uids["iso-a"] >= AppUids.FIRST_UID and uids["iso-b"] >= AppUids.FIRST_UID
    assert uids["iso-a"] != uids["iso-b"]

    # The runtime's table gives the app the same uid its build had.
    runtime_uids = AppUids(builder_data_dir, NOBODY)
    assert {n: runtime_uids.user(n).uid for n in uids} == uids

    # A second build of the same app (another Builder: another process) gets the same uid.
    again = buildpack(shared / "again", '#!/bin/bash\necho "uid=$(id -u)"\n')
    log = BuildLog()
    make_builder().build("iso-a", app, {"BUILDPACK_URL": str(again)}, log)
    assert int(value(log, "uid")) == uids["iso-a"]


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
    make_builder().build("legacy", app, {"BUILDPACK_URL": str(pack)}, log)

    uid = int(value(log, "uid"))
    assert uid >= AppUids.FIRST_UID
    assert "cache=5" in log.lines
    assert (old / "count").read_text() == "6\n" and (old / "deps" / "new").exists()
    for path in [old, *old.rglob("*")]:
        assert path.lstat().st_uid == uid, path
    assert stat.S_IMODE(old.stat().st_mode) == 0o700


def test_two_uid_tables_on_one_data_dir_never_share_a_uid(tmp_path):
    tables = [AppUids(tmp_path, NOBODY), AppUids(tmp_path, NOBODY)]
    got: list[tuple[str, int]] = []
    start = threading.Barrier(8)

    def allocate(worker: int) -> None:
        start.wait()
        for i in range(15):
            name = f"app-{worker}-{i}"
            got.append((name, tables[worker % 2].user(name).uid))

    threads = [threading.Thread(target=allocate, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    # Other processes on the same data dir at the same time.
    script = (
        "import sys; from pathlib import Path; from moorage.platform.identity import AppUids, AppUser\n"
        "t = AppUids(Path(sys.argv[1]), AppUser('nobody', 65534, 65534, 'nogroup', drop=True))\n"
        "print('\\n'.join(f'{n} {t.user(n).uid}' for n in (f'proc-{sys.argv[2]}-{i}' for i in range(15))))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(p)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(3)
    ]
    for t in threads:
        t.join(60)
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        got += [(n, int(u)) for n, u in (line.split() for line in out.splitlines())]

    assert len(got) == 8 * 15 + 3 * 15
    uids = [uid for _, uid in got]
    assert len(set(uids)) == len(uids), "two apps were given the same uid"
    assert min(uids) >= AppUids.FIRST_UID
    # Kept: a fresh table gives every app the uid it got, and a new app a new uid.
    fresh = AppUids(tmp_path, NOBODY)
    assert all(fresh.user(name).uid == uid for name, uid in got)
    assert fresh.user("newcomer").uid not in uids
    for path in (fresh.path, fresh.lock_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
