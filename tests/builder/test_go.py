"""Go buildpack: real builds with Debian's Go, run from a slug unpacked elsewhere.

The apps are the module app and the GOPATH-era app under tests/apps; a vendored module
and broken apps are made from them here. Everything builds offline (GOPROXY=off unless
the app's config says otherwise), as on a machine without internet.
"""

from __future__ import annotations

import re

import httpx
import pytest

from moorage.platform.builder import BuildFailed
from tests.fixtures.builder import BuildLog, running, unpacked

pytestmark = pytest.mark.slow

VENDORED_MAIN = """package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/example/greeting"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, greeting.Hello()) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
"""


def test_module_app_without_procfile_gets_its_main_package_as_web(make_builder, app_copy):
    log = BuildLog()
    result = make_builder().build("go-hello", app_copy("go_module"), {}, log)
    assert "-----> Go app detected" in log.lines
    assert "       No Procfile: web runs go-hello, the one main package" in log.lines
    assert result.process_types == {"web": "go-hello"}
    assert result.buildpacks == ["go"]
    with unpacked(result.slug) as app_dir, running(app_dir, result.process_types["web"]) as url:
        assert httpx.get(url + "/").text.startswith("hello from go-hello, built with go1.")


def test_gopath_app_builds_with_its_import_path_and_runs_its_procfile(make_builder, app_copy):
    log = BuildLog()
    result = make_builder().build("example-go", app_copy("go_gopath"), {}, log)
    assert any(
        "GOPATH-era Go app github.com/deis/example-go (Godeps/Godeps.json ImportPath)" in line
        for line in log.lines
    ), log.text
    assert result.process_types == {"web": "example-go"}
    with unpacked(result.slug) as app_dir, running(app_dir, "example-go", {"POWERED_BY": "Deis"}) as url:
        assert httpx.get(url + "/").text == "Powered by Deis\n"


def test_godir_names_the_binary_when_there_is_no_godeps(make_builder, app_copy):
    source = app_copy("go_gopath")
    (source / "Godeps" / "Godeps.json").unlink()
    (source / "Godeps").rmdir()
    (source / ".godir").write_text("github.com/someone/hello-godir\n")
    (source / "Procfile").write_text("web: hello-godir\n")
    result = make_builder().build("godir", source, {}, BuildLog())
    with unpacked(result.slug) as app_dir:
        assert (app_dir / "bin" / "hello-godir").is_file()
        with running(app_dir, "hello-godir") as url:
            assert httpx.get(url + "/").text == "Powered by Moorage\n"


def vendored(source):
    """The module app with one dependency, vendored as `go mod vendor` leaves it."""
    (source / "go.mod").write_text(
        "module github.com/example/go-hello\n\ngo 1.19\n\nrequire github.com/example/greeting v1.2.0\n"
    )
    (source / "main.go").write_text(VENDORED_MAIN)
    pkg = source / "vendor" / "github.com" / "example" / "greeting"
    pkg.mkdir(parents=True)
    (pkg / "greeting.go").write_text('package greeting\n\nfunc Hello() string { return "hello, vendored" }\n')
    (source / "vendor" / "modules.txt").write_text(
        "# github.com/example/greeting v1.2.0\n## explicit\ngithub.com/example/greeting\n"
    )
    return source


def test_vendored_module_builds_offline(make_builder, app_copy):
    source = vendored(app_copy("go_module"))
    log = BuildLog()
    result = make_builder().build("vendored", source, {}, log)
    assert any("GOPROXY=off, GOFLAGS=-mod=vendor" in line for line in log.lines), log.text
    with unpacked(result.slug) as app_dir, running(app_dir, result.process_types["web"]) as url:
        assert httpx.get(url + "/").text == "hello, vendored\n"


def test_missing_dependency_names_the_command_and_the_way_out(make_builder, app_copy):
    source = vendored(app_copy("go_module"))
    (source / "vendor" / "modules.txt").unlink()
    (source / "vendor" / "github.com" / "example" / "greeting" / "greeting.go").unlink()
    log = BuildLog()
    with pytest.raises(BuildFailed, match="go buildpack failed to compile"):
        make_builder().build("no-deps", source, {}, log)
    failure = next(line for line in log.lines if line.startswith(" !     "))
    assert failure.startswith(" !     Build failed: `go install ./...` failed (exit code 1)"), failure
    assert "run `go mod vendor` and commit vendor/, or set the config var GOPROXY" in failure
    # The app's GOPROXY config var is used (here a proxy that is not there).
    log = BuildLog()
    with pytest.raises(BuildFailed):
        make_builder().build("no-deps", source, {"GOPROXY": "http://127.0.0.1:9"}, log)
    assert "GOPROXY=http://127.0.0.1:9" in log.text and "127.0.0.1:9" in log.text.split("GOPROXY=")[-1]


def test_compile_error_names_the_failed_command(make_builder, app_copy):
    source = app_copy("go_module")
    (source / "main.go").write_text(
        (source / "main.go").read_text().replace("log.Fatal(http", "log.Fatal(htp")
    )
    log = BuildLog()
    with pytest.raises(BuildFailed, match="go buildpack failed to compile"):
        make_builder().build("broken", source, {}, log)
    assert any("undefined: htp" in line for line in log.lines), log.text
    failure = next(line for line in log.lines if line.startswith(" !     "))
    assert re.match(
        r" !     Build failed: `go install \./\.\.\.` failed \(exit code \d+\): the Go compiler's errors are above",
        failure,
    )


def test_an_unchanged_rebuild_reuses_the_binaries_and_a_change_rebuilds(make_builder, app_copy):
    builder = make_builder()
    source = app_copy("go_module")
    builder.build("go-hello", source, {}, BuildLog())
    log = BuildLog()
    builder.build("go-hello", source, {}, log)
    assert any(line.startswith("-----> Reusing the binaries of the last build") for line in log.lines), (
        log.text
    )
    (source / "main.go").write_text((source / "main.go").read_text().replace("hello from", "changed:"))
    log = BuildLog()
    result = builder.build("go-hello", source, {}, log)
    assert "-----> Running: go install ./..." in log.lines
    with unpacked(result.slug) as app_dir, running(app_dir, result.process_types["web"]) as url:
        assert httpx.get(url + "/").text.startswith("changed: go-hello")
    # Another GOFLAGS is another build, too.
    log = BuildLog()
    builder.build("go-hello", source, {"GOFLAGS": "-ldflags=-s"}, log)
    assert "-----> Running: go install ./..." in log.lines


def test_bare_go_files_build_in_gopath_mode_as_app(make_builder, app_copy):
    source = app_copy("go_module")
    (source / "go.mod").unlink()
    log = BuildLog()
    result = make_builder().build("bare", source, {}, log)
    assert any("Go app app (no go.mod, Godeps or .godir)" in line for line in log.lines), log.text
    assert result.process_types == {"web": "app"}
    with unpacked(result.slug) as app_dir, running(app_dir, "app") as url:
        assert httpx.get(url + "/").text.startswith("hello from go-hello")
