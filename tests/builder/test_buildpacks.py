"""Choosing and running buildpacks: BUILDPACK_URL, .buildpacks, isolation, limits, failures."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from moorage.platform.builder import BuildFailed, BuildTimeout
from tests.fixtures.builder import RELEASE_WEB, BuildLog, world_dir, write_buildpack
from tests.polling import wait_for


@pytest.fixture
def shared():
    folder = world_dir("moorage-bp-test-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def app(tmp_path) -> Path:
    source = tmp_path / "app"
    source.mkdir()
    (source / "hello.txt").write_text("hi\n")
    return source


def test_no_buildpack_detects_the_app(make_builder, app):
    with pytest.raises(BuildFailed) as failure:
        make_builder().build("nothing", app, {}, BuildLog())
    message = str(failure.value)
    assert "no buildpack detected this app" in message
    assert "built-ins tried: python, nodejs, go, static, procfile" in message


def test_local_buildpack_runs_unprivileged_and_sees_only_its_folders(
    make_builder, app, shared, builder_data_dir
):
    bp = write_buildpack(
        shared / "bp",
        'echo "uid=$(id -u) user=$(id -un)"\n'
        'echo "greeting=$(cat "$3/GREETING")"\n'
        'echo "exported=${GREETING:-unset}"\n'
        f'if ls {builder_data_dir}/build-cache >/dev/null 2>&1; then echo "can list caches"; fi\n'
        'if ls /root >/dev/null 2>&1; then echo "can list /root"; fi\n'
        'echo "cache=$(cat "$2/count" 2>/dev/null || echo 0)"; echo $(( $(cat "$2/count" 2>/dev/null || echo 0) + 1 )) > "$2/count"\n'
        'printf "#!/bin/sh\\necho ran\\n" > "$1/run.sh"; chmod +x "$1/run.sh"',
    )
    builder = make_builder()
    log = BuildLog()
    # The uid the controller allocated for the app (see controller.app_uids).
    result = builder.build(
        "custom", app, {"BUILDPACK_URL": str(bp), "GREETING": "hello there"}, log, uid=47401
    )

    assert "-----> Custom app detected" in log.lines
    assert os.geteuid() == 0, "builds run as the app's own uid: this test runs as root, like the suite"
    [line] = [ln for ln in log.lines if ln.startswith("uid=")]  # not root, not shared with other apps
    assert int(line.split()[0][len("uid=") :]) == 47401, line
    assert "greeting=hello there" in log.lines
    assert "exported=unset" in log.lines  # config vars are files in ENV_DIR, not exported
    assert "can list caches" not in log.lines and "can list /root" not in log.lines
    assert "cache=0" in log.lines
    assert result.process_types == {"web": "./run.sh"}

    log = BuildLog()
    builder.build("custom", app, {"BUILDPACK_URL": str(bp)}, log, uid=47401)
    assert "cache=1" in log.lines  # CACHE_DIR is kept between builds of the app


def test_git_buildpack_url_with_a_ref(make_builder, app, shared):
    repo = shared / "bp-repo"
    write_buildpack(repo, 'echo "version one"; touch "$1/run.sh"')
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "--quiet", "--initial-branch=main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "one"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)
    (repo / "bin" / "compile").write_text('#!/usr/bin/env bash\necho "version two"; touch "$1/run.sh"\n')
    subprocess.run([*git, "commit", "--quiet", "-am", "two"], check=True)
    for folder, dirs, files in os.walk(repo):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o755)

    log = BuildLog()
    make_builder().build("from-git", app, {"BUILDPACK_URL": f"file://{repo}#v1"}, log)
    assert f"-----> Fetching buildpack file://{repo}#v1" in log.lines
    assert "version one" in log.lines and "version two" not in log.lines

    log = BuildLog()
    make_builder().build("from-git", app, {"BUILDPACK_URL": f"file://{repo}"}, log)
    assert "version two" in log.lines

    with pytest.raises(BuildFailed, match="has no branch, tag or commit 'nope'"):
        make_builder().build("from-git", app, {"BUILDPACK_URL": f"file://{repo}#nope"}, BuildLog())


def test_buildpacks_file_runs_several_in_order_with_export(make_builder, app):
    first = write_buildpack(app / "packs" / "first", 'echo "first ran"', release_body='echo "--- {}"')
    (first / "export").write_text("export FROM_FIRST=yes\n")
    write_buildpack(
        app / "packs" / "second",
        'echo "second sees FROM_FIRST=${FROM_FIRST:-no}"; touch "$1/run.sh"',
    )
    (app / ".buildpacks").write_text("# run in this order\npacks/first\npacks/second\n")

    log = BuildLog()
    result = make_builder().build("multi", app, {}, log)

    assert log.lines.index("first ran") < log.lines.index("second sees FROM_FIRST=yes")
    assert result.process_types == {"web": "./run.sh"}
    assert len(result.buildpacks) == 2


def test_no_procfile_and_no_default_process_types(make_builder, app, shared):
    bp = write_buildpack(shared / "bp", "true", release_body='echo "---"')
    with pytest.raises(BuildFailed) as failure:
        make_builder().build("no-types", app, {"BUILDPACK_URL": str(bp)}, BuildLog())
    assert "no Procfile" in str(failure.value) and "default_process_types" in str(failure.value)


def test_a_folder_without_bin_compile_is_not_a_buildpack(make_builder, app, shared):
    (shared / "empty").mkdir()
    with pytest.raises(BuildFailed, match="is not a buildpack: it has no bin/detect"):
        make_builder().build("bad-bp", app, {"BUILDPACK_URL": str(shared / "empty")}, BuildLog())


def test_build_timeout_kills_the_whole_process_group(make_builder, app, shared):
    bp = write_buildpack(shared / "bp", 'sleep 300 &\necho "child $!"\nsleep 300')
    log = BuildLog()
    with pytest.raises(BuildTimeout) as failure:
        make_builder(build_timeout_seconds=3).build("slow", app, {"BUILDPACK_URL": str(bp)}, log)
    assert "did not finish before the build timeout" in str(failure.value)
    child = int(next(line for line in log.lines if line.startswith("child ")).split()[1])
    wait_for(lambda: _gone_or_zombie(child), 5, what=f"the build's child process {child} to be killed")


def _gone_or_zombie(pid: int) -> bool:
    """Killed: no such process, or a zombie its new parent has not reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_slug_over_the_limit_fails_and_keeps_nothing(make_builder, app, builder_data_dir):
    (app / "Procfile").write_text("web: python3 -m http.server $PORT\n")
    (app / "blob.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    with pytest.raises(BuildFailed) as failure:
        make_builder(slug_max_mb=1).build("too-big", app, {}, BuildLog())
    assert "over the 1 MB limit" in str(failure.value) and ".slugignore" in str(failure.value)
    assert not list(builder_data_dir.rglob("*.tgz")), "a slug over the limit was kept"


def test_invalid_procfile_line_is_reported(make_builder, app):
    (app / "Procfile").write_text("web python3 -m http.server\n")
    with pytest.raises(BuildFailed, match="Procfile line 1 is not `type: command`"):
        make_builder().build("bad-procfile", app, {}, BuildLog())


@pytest.mark.parametrize(
    ("compile_body", "release_body", "needle"),
    [
        ('ln -s /etc/shadow "$1/Procfile"', RELEASE_WEB, "Procfile in the build is a link"),
        (
            'ln -s /etc/cron.d "$1/.profile.d"',
            RELEASE_WEB + '; echo "config_vars:"; echo "  X: y"',
            ".profile.d in the build must be a folder",
        ),
        ('ln -s /etc/moorage-test-victim "$1/.release"', RELEASE_WEB, None),
    ],
)
def test_links_a_buildpack_leaves_in_the_build_are_never_followed(
    make_builder, app, shared, compile_body, release_body, needle
):
    """The controller reads and writes the build folder without following the build user's links."""
    bp = write_buildpack(shared / "bp", compile_body, release_body)
    shadow_before = Path("/etc/shadow").read_bytes()
    cron_before = sorted(os.listdir("/etc/cron.d")) if os.path.isdir("/etc/cron.d") else None
    log = BuildLog()
    try:
        make_builder().build("hostile", app, {"BUILDPACK_URL": str(bp)}, log)
    except BuildFailed as failure:
        assert needle is not None and needle in str(failure), str(failure)
    else:
        assert needle is None, "the build should have been refused"
    assert "root:" not in log.text
    assert Path("/etc/shadow").read_bytes() == shadow_before
    if cron_before is not None:
        assert sorted(os.listdir("/etc/cron.d")) == cron_before
    assert not os.path.exists("/etc/moorage-test-victim")
