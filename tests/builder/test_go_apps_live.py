"""Go apps of the kinds public samples are, pushed unchanged with git and curled.

A module app without a Procfile (the buildpack's default ``web``), a GOPATH-era app
with ``Godeps/Godeps.json``, ``.godir`` and a Procfile naming its binary, and a push of
code that does not compile, which is refused naming the command that failed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.fixtures.git_apps import APPS, push_app, served
from tests.fixtures.platform import LivePlatform, run_live_platform

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live() -> Iterator[LivePlatform]:
    with run_live_platform(builder=None, platform={"deploy_timeout_seconds": 60.0}) as platform:
        yield platform


def test_a_module_app_without_procfile_serves_from_its_default_web(live, tmp_path):
    push = push_app(live, tmp_path, "go-hello", APPS / "go_module")
    assert push.returncode == 0, push.output[-3000:]
    assert "-----> Go app detected" in push.remote_lines
    assert "       No Procfile: web runs go-hello, the one main package" in push.remote_lines
    assert served(live, "go-hello").startswith(b"hello from go-hello, built with go1.")


def test_a_gopath_era_app_with_godeps_and_godir(live, tmp_path):
    push = push_app(live, tmp_path, "example-go", APPS / "go_gopath", config={"POWERED_BY": "Deis"})
    assert push.returncode == 0, push.output[-3000:]
    assert any("GO111MODULE=off" in line for line in push.remote_lines), push.output
    assert served(live, "example-go") == b"Powered by Deis\n"


def test_a_push_that_does_not_compile_names_the_command_and_adds_no_release(live, tmp_path):
    source = tmp_path / "broken-src"
    shutil.copytree(APPS / "go_module", source)
    (source / "main.go").write_text(
        (source / "main.go").read_text().replace("fmt.Fprintf(w,", "fmt.Fprintf(w")
    )
    push = push_app(live, tmp_path, "go-broken", source)
    assert push.returncode != 0
    assert any(
        line.startswith(" !     Build failed: `go install ./...` failed (exit code ")
        for line in push.remote_lines
    ), push.output
    assert any("main.go:" in line and "syntax error" in line for line in push.remote_lines), push.output
    assert "-----> Released v2" not in push.remote_lines
    assert live.get("go-broken.moorage.localhost")[0] == 404
