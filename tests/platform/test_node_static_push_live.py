"""Node.js and static apps written as public samples are, deployed by ``git push``.

Each app of tests/apps is committed into a fresh checkout, pushed with real git to a live
platform (the buildpack builder, the LocalRuntime under the app's own uid, nginx), and
curled through the router by its host name. A build that fails says which command failed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.platform import Cli, LivePlatform, run_live_platform
from tests.platform.test_git_push import cli_for, git
from tests.polling import wait_for

pytestmark = pytest.mark.slow

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture(scope="module")
def live() -> Iterator[LivePlatform]:
    with run_live_platform(builder=None, platform={"deploy_timeout_seconds": 30.0}) as platform:
        yield platform


def pushed(live: LivePlatform, base: Path, app: str, source: str, check: bool = True) -> tuple[Cli, str]:
    """``source`` (a test app) committed as it is and pushed to a new app; the push's output."""
    cli = cli_for(live, base, "alice")
    cli.ok("apps:create", app)
    shutil.copytree(APPS / source, cli.cwd, dirs_exist_ok=True)
    git(cli, "init", "--quiet", "--initial-branch=main")
    git(cli, "add", "--all")
    git(cli, "commit", "--quiet", "-m", f"{source} as published")
    cli.ok("git:remote", "-a", app)
    push = git(cli, "push", "moorage", "main", check=check)
    return cli, push.stderr


def serves(live: LivePlatform, host: str, path: str = "/", timeout: float = 30.0) -> tuple[int, bytes]:
    """The first answer that is not the router's 404/502 while the release starts."""
    last: list[tuple[int, bytes]] = []

    def answered() -> tuple[int, bytes] | None:
        last[:] = [live.get(host, path)]
        return last[0] if last[0][0] not in (404, 502, 503) else None

    return wait_for(answered, timeout, 0.1, what=f"{host} to answer", detail=lambda: repr(last))


def test_express_without_a_lockfile(live, tmp_path):
    cli, output = pushed(live, tmp_path, "nolock", "node_express_nolock")
    assert "remote: -----> Installing dependencies with npm install (no lockfile" in output, output
    assert 'remote:  !     WARNING: engines.node asks for "4.5.x"' in output
    assert "remote: -----> Released v2" in output
    status, body = serves(live, "nolock.moorage.localhost")
    assert status == 200 and body.startswith(b"Hello from Express 4.") and b"without a lockfile" in body
    # moorage run, its flag after the command as Heroku users type it
    out = cli.ok("run", "node", "-p", "require('express/package.json').version", "-a", "nolock")
    assert out.startswith("4.")


def test_express_with_yarn_lock(live, tmp_path):
    _, output = pushed(live, tmp_path, "yarnapp", "node_express_yarn")
    assert "remote: -----> Installing dependencies with yarn install --frozen-lockfile (yarn.lock)" in output
    assert "remote: -----> Released v2" in output, output
    status, body = serves(live, "yarnapp.moorage.localhost")
    assert status == 200 and body.endswith(b", installed by yarn\n"), body


def test_pnpm_app(live, tmp_path):
    _, output = pushed(live, tmp_path, "pnpmapp", "node_pnpm")
    assert (
        "remote: -----> Installing dependencies with pnpm install --frozen-lockfile (pnpm-lock.yaml)"
        in output
    )
    assert "remote: -----> Running the build script (pnpm run build)" in output, output
    assert serves(live, "pnpmapp.moorage.localhost") == (200, b"pnpm installed ms: 2m\n")


def test_build_script_that_needs_dev_dependencies(live, tmp_path):
    cli, output = pushed(live, tmp_path, "tsapp", "node_ts_build")
    assert "remote: -----> Running the build script (npm run build)" in output, output
    assert "remote: -----> Pruning devDependencies" in output
    assert serves(live, "tsapp.moorage.localhost") == (
        200,
        b"Hello from TypeScript, compiled at build time\n",
    )
    assert cli.ok(
        "run", "-a", "tsapp", "--", "test", "-d", "node_modules/typescript", "||", "echo", "pruned"
    ) == ("pruned\n")


def test_static_site_with_a_marker_file_and_a_dotenv(live, tmp_path):
    _, output = pushed(live, tmp_path, "marker", "static_marker")
    assert "remote: -----> Static site app detected" in output, output
    host = "marker.moorage.localhost"
    status, body = serves(live, host)
    assert status == 200 and b"Static site with a .static marker" in body
    assert live.get(host, "/css/site.css") == (200, b"body { font-family: sans-serif; }\n")
    for path in ("/.env", "/%2Eenv", "/.static", "/.git/config"):
        status, body = live.get(host, path)
        assert status == 404 and b"static-site-secret" not in body, path
        assert b"This page went missing" in body, path
    status, body = live.get(host, "/nowhere.html")
    assert status == 404 and b"This page went missing" in body


def test_failed_node_build_names_the_command_and_adds_no_release(live, tmp_path):
    cli = cli_for(live, tmp_path, "alice")
    cli.ok("apps:create", "broken")
    shutil.copytree(APPS / "node_express_nolock", cli.cwd, dirs_exist_ok=True)
    package = (cli.cwd / "package.json").read_text()
    (cli.cwd / "package.json").write_text(
        package.replace('"express": "^4.18.2"', '"expresss-moorage-typo-9c1": "^4"')
    )
    git(cli, "init", "--quiet", "--initial-branch=main")
    git(cli, "add", "--all")
    git(cli, "commit", "--quiet", "-m", "typo")
    cli.ok("git:remote", "-a", "broken")
    push = git(cli, "push", "moorage", "main", check=False)
    assert push.returncode != 0
    assert (
        "remote:  !     Build failed: `npm install --include=dev --prefer-offline` exited with code 1"
        in push.stderr
    ), push.stderr
    assert "expresss-moorage-typo-9c1" in push.stderr
    assert "(exit code 1): `npm install --include=dev --prefer-offline` exited with code 1" in push.stderr
    assert live.get("broken.moorage.localhost")[0] == 404
