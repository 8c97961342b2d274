"""Node.js, static and Procfile buildpacks; process types from bin/release; release tasks."""

from __future__ import annotations

import json
import tarfile

import httpx
import pytest

from tests.fixtures.builder import BuildLog, run_command, running, unpacked

pytestmark = pytest.mark.slow


def test_express_app_with_lockfile_and_no_procfile(make_builder, app_copy):
    builder = make_builder()
    source = app_copy("bp_express")
    log = BuildLog()

    result = builder.build("express-app", source, {}, log)

    assert "-----> Node.js app detected" in log.lines
    assert "-----> Installing dependencies with npm ci (package-lock.json)" in log.lines
    assert "-----> Running the build script (npm run build)" in log.lines
    assert any('engines.node ">=18" is satisfied by v' in line for line in log.lines)
    # No Procfile: bin/release's default_process_types are the process types.
    assert result.process_types == {"web": "npm start"}
    assert result.process_types_from == "default_process_types"
    with unpacked(result.slug) as app_dir:
        assert (app_dir / "Procfile").read_text() == "web: npm start\n"
        with running(app_dir, result.process_types["web"]) as url:
            answer = httpx.get(url + "/")
            assert answer.status_code == 200
            assert answer.text == "hello from express, built at build time\n"

    # Unchanged lockfile: node_modules comes from the cache, npm installs nothing.
    log = BuildLog()
    builder.build("express-app", source, {}, log)
    assert "-----> Reusing cached node_modules (package-lock.json unchanged)" in log.lines
    assert not any("npm ci" in line for line in log.lines)


def test_node_engines_that_do_not_match_give_a_warning(make_builder, app_copy):
    source = app_copy("bp_express")
    package = json.loads((source / "package.json").read_text())
    package["engines"] = {"node": "<10"}
    (source / "package.json").write_text(json.dumps(package))
    log = BuildLog()
    make_builder().build("old-node", source, {}, log)
    assert any(
        'WARNING: engines.node asks for "<10" but this machine has node v' in line for line in log.lines
    )


def test_static_site_is_served_and_slugignore_is_honoured(make_builder, app_copy):
    source = app_copy("bp_static")
    log = BuildLog()

    result = make_builder().build("static-site", source, {}, log)

    assert "-----> Static site app detected" in log.lines
    assert any(".slugignore removed 2 path(s): drafts, logo.psd" in line for line in log.lines)
    with tarfile.open(result.slug) as slug:
        names = slug.getnames()
    assert "./index.html" in names and "./style.css" in names
    assert "./logo.psd" not in names and not any(n.startswith("./drafts") for n in names)
    with (
        unpacked(result.slug) as app_dir,
        running(app_dir, result.process_types["web"], {"HOST": "127.0.0.1"}) as url,
    ):
        page = httpx.get(url + "/")
        assert page.status_code == 200 and "hello from a static site" in page.text
        assert httpx.get(url + "/style.css").text == "h1 { color: teal; }\n"
        assert httpx.get(url + "/.profile.d/").status_code == 404
        assert httpx.get(url + "/Procfile").status_code == 404


def test_release_task_is_reported_and_runs_from_the_slug(make_builder, app_copy):
    source = app_copy("bp_release")
    log = BuildLog()

    result = make_builder().build("release-app", source, {}, log)

    assert "-----> Procfile app detected" in log.lines
    assert "       Procfile declares types -> web, release" in log.lines
    assert result.process_types["release"] == 'echo "migrating from $(pwd)" && test -f index.txt'
    with unpacked(result.slug) as app_dir:
        task = run_command(app_dir, result.process_types["release"])
        assert task.returncode == 0
        assert task.stdout == f"migrating from {app_dir}\n"
        with running(app_dir, result.process_types["web"]) as url:
            assert httpx.get(url + "/index.txt").text == "served by python's http.server\n"
