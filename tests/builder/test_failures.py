"""No silent build failure: each buildpack's failed build names the command, its code and line.

The shipped bash buildpacks source ``buildpacks/lib/failures.sh``; the builder's error
ends with the buildpack's exit code and the ``Build failed:`` line. Each test breaks an app
the way a user would and checks what they would read.
"""

from __future__ import annotations

import json
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
