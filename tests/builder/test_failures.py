"""No silent build failure: each buildpack's failed build names the command, its code and line.

The shipped bash buildpacks source ``buildpacks/lib/failures.sh``; the builder's error
ends with the buildpack's exit code and the ``Build failed:`` line. Each test breaks an app
the way a user would and checks what they would read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from moorage.platform.builder import BuildFailed
from tests.fixtures.builder import BuildLog, world_dir, write_buildpack

pytestmark = pytest.mark.slow


def failed_build(make_builder, source: Path, env: dict[str, str] | None = None) -> tuple[str, BuildLog]:
    log = BuildLog()
    with pytest.raises(BuildFailed) as failure:
        make_builder().build("broken", source, env or {}, log)
    return str(failure.value), log


def test_node_install_failure_names_npm_and_quotes_its_last_lines(make_builder, app_copy):
    source = app_copy("node_express_nolock")
    package = json.loads((source / "package.json").read_text())
    package["dependencies"]["moorage-no-such-package-0d1f"] = "1.0.0"
    (source / "package.json").write_text(json.dumps(package))

    message, log = failed_build(make_builder, source)

    named = "`npm install --include=dev --prefer-offline` exited with code 1 (bin/compile line"
    assert f" !     Build failed: {named}" in log.text
    assert " !     Its last output lines:" in log.lines
    assert any("moorage-no-such-package-0d1f" in line and line.startswith(" !       ") for line in log.lines)
    assert message.startswith("the nodejs buildpack failed to compile the app (exit code 1): ")
    assert named in message


def test_node_build_script_failure_names_the_script(make_builder, app_copy):
    source = app_copy("bp_express")
    (source / "build.js").write_text('console.error("webpack: cannot find ./src/main.js"); process.exit(2)\n')

    message, log = failed_build(make_builder, source)

    assert "`npm run build` exited with code 2 (bin/compile line" in message
    assert " !       webpack: cannot find ./src/main.js" in log.lines


def test_static_failure_names_the_command(make_builder, app_copy):
    source = app_copy("bp_static")
    (source / ".static-server").write_text("the site's own file, where the server goes\n")

    message, log = failed_build(make_builder, source)

    assert any("cannot create directory" in line and "File exists" in line for line in log.lines)
    assert '`mkdir "$build_dir/.static-server"` exited with code 1 (bin/compile line' in message
    assert message.startswith("the static buildpack failed to compile the app (exit code 1)")


def test_procfile_failure_names_the_command(make_builder, app_copy):
    source = app_copy("bp_release")
    (source / "Procfile").unlink()
    (source / "Procfile").symlink_to("/etc/shadow")  # a Procfile the build cannot read

    message, log = failed_build(make_builder, source)

    assert any("Permission denied" in line for line in log.lines), log.lines
    assert "exited with code 2 (bin/compile line" in message
    assert "awk -F:" in message


def test_a_buildpack_that_says_nothing_still_gets_its_exit_code_and_last_lines(make_builder, app_copy):
    folder = world_dir("moorage-silent-bp-")
    write_buildpack(folder / "quiet", 'echo "-----> Doing things"; echo "step two"; exit 4')
    write_buildpack(folder / "mute", "exit 5")
    source = app_copy("bp_release")

    message, _ = failed_build(make_builder, source, {"BUILDPACK_URL": str(folder / "quiet")})
    assert (
        "(exit code 4) and printed no reason; its last output lines: -----> Doing things | step two"
        in message
    )

    message, _ = failed_build(make_builder, source, {"BUILDPACK_URL": str(folder / "mute")})
    assert "(exit code 5) and printed nothing at all" in message


LIB = Path(__file__).resolve().parents[2] / "buildpacks" / "lib" / "failures.sh"


def compile_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    """A bin/compile that sources failures.sh as the shipped buildpacks do, then ``body``."""
    script = tmp_path / "bp" / "bin" / "compile"
    script.parent.mkdir(parents=True)
    shutil.copytree(LIB.parent, tmp_path / "lib")
    script.write_text(
        '#!/usr/bin/env bash\nset -euo pipefail\nbp_dir="$(cd "$(dirname "$0")/.." && pwd)"\n'
        f'. "$bp_dir/../lib/failures.sh"\n{body}\n'
    )
    script.chmod(0o755)
    return subprocess.run([str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=30)


@pytest.mark.parametrize(
    ("body", "code", "reported"),
    [
        # The Node.js buildpack's old cache key: a pipeline that fails without a word.
        (
            'lockfile=""\nkey="$( { echo a; [ -n "$lockfile" ] && cat "$lockfile"; } | sha256sum )"',
            1,
            'exited with code 1 (bin/compile line 6: key="$( { echo a; [ -n "$lockfile" ] && cat',
        ),
        ("f() {\n  false\n}\nf", 1, "Build failed: `false` exited with code 1 (bin/compile line 6)"),
        ("ls /nonexistent-9f | cat", 2, "(bin/compile line 5: ls /nonexistent-9f | cat)"),
        ("exit 3", 3, "Build failed: bin/compile exited with code 3; the last command it ran was `exit 3`"),
        ('bp_fail "package.json is not valid JSON"', 1, "Build failed: package.json is not valid JSON (bin/"),
        (
            "bp_run bash -c 'echo first; echo the reason >&2; exit 7'",
            7,
            "Build failed: `bash -c 'echo first; echo the reason >&2; exit 7'` exited with code 7 (bin/compile line 5)"
            "\n !     Its last output lines:\n !       first\n !       the reason\n",
        ),
    ],
)
def test_failures_sh_reports_each_way_a_script_can_fail(tmp_path, body, code, reported):
    proc = compile_script(tmp_path, body)
    assert proc.returncode == code
    assert reported in proc.stdout, proc.stdout
    assert proc.stdout.count("Build failed:") == 1


def test_failures_sh_stays_quiet_when_nothing_failed(tmp_path):
    body = 'x="$(false; echo kept)"\ny="$(false)" || true\nif ! grep -q z <<<"a"; then echo no-z; fi\nbp_run echo done'
    proc = compile_script(tmp_path, body)
    assert proc.returncode == 0
    assert proc.stdout == "no-z\n       done\n"
