"""Node.js apps as public samples ship them: no lockfile, package-lock v1-v3, yarn.lock,
pnpm-lock.yaml, a build script that needs devDependencies; and a cache keyed on all of it.

Each test builds with the real buildpack (real npm, yarn 1 and pnpm from the npm registry),
unpacks the slug elsewhere and starts the web process as the runtime would.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.fixtures.builder import BuildLog, run_command, running, unpacked, world_dir

pytestmark = pytest.mark.slow

MS_INTEGRITY = (
    "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA=="
)
MS_TARBALL = "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz"


def built(builder, app: str, source: Path) -> tuple[object, BuildLog]:
    log = BuildLog()
    return builder.build(app, source, {}, log), log


def test_express_without_a_lockfile_builds_warns_about_engines_and_serves(make_builder, app_copy):
    builder = make_builder()
    source = app_copy("node_express_nolock")

    result, log = built(builder, "nolock", source)

    assert any(
        line.startswith("-----> Installing dependencies with npm install (no lockfile") for line in log.lines
    )
    assert any('WARNING: engines.node asks for "4.5.x" but this machine has node v' in ln for ln in log.lines)
    with unpacked(result.slug) as app_dir:
        assert not (app_dir / "package-lock.json").exists()  # the slug is the app as pushed
        with running(app_dir, result.process_types["web"]) as url:
            assert httpx.get(url + "/").text.startswith("Hello from Express 4.")

    # Unchanged package.json: node_modules from the cache, npm not run.
    result, log = built(builder, "nolock", source)
    assert "-----> Reusing cached node_modules (package.json unchanged)" in log.lines
    assert not any("npm install" in line for line in log.lines)

    # An .npmrc the app adds is part of the key too: npm installs again.
    (source / ".npmrc").write_text("legacy-peer-deps=true\n")
    _, log = built(builder, "nolock", source)
    assert "-----> Installing dependencies with npm install (no lockfile" in log.text

    # A changed package.json is a different key: npm installs again, the new dependency is there.
    package = json.loads((source / "package.json").read_text())
    package["dependencies"]["ms"] = "^2.1.3"
    (source / "package.json").write_text(json.dumps(package, indent=2))
    result, log = built(builder, "nolock", source)
    assert not any(line.startswith("-----> Reusing cached") for line in log.lines)
    with unpacked(result.slug) as app_dir:
        assert run_command(app_dir, "node -p 'require(\"ms\")(60000)'").stdout == "1m\n"


def lockfile(version: int) -> dict:
    """A package-lock.json of the given lockfileVersion for one dependency, ms 2.1.3."""
    root = {"name": "locked", "version": "1.0.0", "dependencies": {"ms": "2.1.3"}}
    entry = {"version": "2.1.3", "resolved": MS_TARBALL, "integrity": MS_INTEGRITY}
    lock: dict = {"name": "locked", "version": "1.0.0", "lockfileVersion": version, "requires": True}
    if version in (1, 2):
        lock["dependencies"] = {"ms": entry}
    if version in (2, 3):
        lock["packages"] = {"": root, "node_modules/ms": entry}
    return lock


@pytest.mark.parametrize("version", [1, 2, 3])
def test_package_lock_v1_to_v3_install_with_npm_ci(make_builder, tmp_path, version):
    source = tmp_path / "locked"
    source.mkdir()
    package = {"name": "locked", "version": "1.0.0", "dependencies": {"ms": "2.1.3"}}
    (source / "package.json").write_text(json.dumps(package))
    (source / "package-lock.json").write_text(json.dumps(lockfile(version)))
    (source / "Procfile").write_text(
        'web: node -e \'require("http").createServer((q, r) => r.end(require("ms")(2000))).listen(process.env.PORT)\'\n'
    )

    result, log = built(make_builder(), "locked", source)

    assert "-----> Installing dependencies with npm ci (package-lock.json)" in log.lines
    with unpacked(result.slug) as app_dir, running(app_dir, result.process_types["web"]) as url:
        assert httpx.get(url + "/").text == "2s"


def test_yarn_lock_builds_with_yarn_1_installed_once_into_the_tool_cache(make_builder, app_copy):
    """The install of yarn reads the machine's npm config (its registry and CA), even for a
    controller started without any CA variable in its environment."""
    tools = world_dir("moorage-tools-")
    source = app_copy("node_express_yarn")
    try:
        result, log = built(make_builder(environ={}, tool_cache_dir=str(tools)), "yarn-a", source)

        assert (
            "-----> Installing yarn-1.22.22 into the platform's tool cache (once, for every app)" in log.lines
        )
        assert "-----> Using node v" in log.text and "and yarn 1.22.22" in log.text
        assert "-----> Installing dependencies with yarn install --frozen-lockfile (yarn.lock)" in log.lines
        assert any('engines.node asks for "18.x.x"' in line for line in log.lines)  # warns, builds
        assert "-----> Pruning devDependencies" in log.lines
        with unpacked(result.slug) as app_dir:
            assert not (app_dir / "node_modules" / "nodemon").exists()
            with running(app_dir, result.process_types["web"]) as url:
                assert httpx.get(url + "/").text.startswith("Hello from Express 4.")

        # Another app's build (another uid, its own empty cache) reuses the tool.
        _, log = built(make_builder(tool_cache_dir=str(tools)), "yarn-b", source)
        assert not any("Installing yarn" in line for line in log.lines)
        assert "-----> Installing dependencies with yarn install --frozen-lockfile (yarn.lock)" in log.lines
        # Root's and read-only to every build; nothing half-installed is left behind.
        assert sorted(p.name for p in tools.iterdir()) == ["yarn-1.22.22"]
        assert os.geteuid() == 0, "the tool is sealed as root's: this test runs as root, like the suite"
        for path in [tools / "yarn-1.22.22", *(tools / "yarn-1.22.22").rglob("*")]:
            st = path.lstat()
            assert st.st_uid == 0, path
            assert stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o022, path
    finally:
        shutil.rmtree(tools, ignore_errors=True)


def test_pnpm_lock_builds_with_pnpm_and_a_changed_lockfile_is_a_new_key(make_builder, app_copy):
    builder = make_builder()
    source = app_copy("node_pnpm")

    result, log = built(builder, "pnpm", source)

    assert "-----> Installing dependencies with pnpm install --frozen-lockfile (pnpm-lock.yaml)" in log.lines
    assert "-----> Running the build script (pnpm run build)" in log.lines  # needs is-number
    assert "-----> Pruning devDependencies" in log.lines
    with unpacked(result.slug) as app_dir:
        assert not (app_dir / "node_modules" / "is-number").exists()
        with running(app_dir, result.process_types["web"]) as url:
            assert httpx.get(url + "/").text == "pnpm installed ms: 2m\n"

    _, log = built(builder, "pnpm", source)
    assert "-----> Reusing cached node_modules (pnpm-lock.yaml unchanged)" in log.lines
    lock = source / "pnpm-lock.yaml"
    lock.write_text(lock.read_text() + "\n")  # any change to the lockfile
    _, log = built(builder, "pnpm", source)
    assert not any(line.startswith("-----> Reusing cached") for line in log.lines)


def test_build_script_gets_dev_dependencies_which_are_pruned_after(make_builder, app_copy):
    source = app_copy("node_ts_build")

    result, log = built(make_builder(), "ts", source)

    assert "-----> Running the build script (npm run build)" in log.lines
    assert "-----> Pruning devDependencies" in log.lines
    with tarfile.open(result.slug) as slug:
        names = set(slug.getnames())
    assert "./dist/index.js" in names
    assert "./node_modules/express/package.json" in names
    assert not any(name.startswith("./node_modules/typescript") for name in names)
    with unpacked(result.slug) as app_dir, running(app_dir, result.process_types["web"]) as url:
        assert httpx.get(url + "/").text == "Hello from TypeScript, compiled at build time\n"


def test_heroku_postbuild_runs_instead_of_build(make_builder, app_copy):
    source = app_copy("node_express_nolock")
    package = json.loads((source / "package.json").read_text())
    package["scripts"]["build"] = "echo the build script must not run && exit 1"
    package["scripts"]["heroku-postbuild"] = "node -e \"require('fs').writeFileSync('post.txt', 'built')\""
    (source / "package.json").write_text(json.dumps(package))

    result, log = built(make_builder(), "postbuild", source)

    assert "-----> Running the heroku-postbuild script (npm run heroku-postbuild)" in log.lines
    with unpacked(result.slug) as app_dir:
        assert (app_dir / "post.txt").read_text() == "built"
