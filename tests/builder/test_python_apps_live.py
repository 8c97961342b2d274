"""Python apps of the kinds public samples are, pushed unchanged with git and curled.

Each app under tests/apps is committed in a checkout of its own, pushed with
``git push moorage main`` to a controller with the real buildpack builder, released,
started by the local runtime under the app's uid and asked through nginx. The
interpreters come from the machine's interpreter store (``moorage stack:install``,
run by scripts/bootstrap), so the pins below meet what a fresh set-up has.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.git_apps import APPS, push_app, served
from tests.fixtures.platform import LivePlatform, run_live_platform

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live() -> Iterator[LivePlatform]:
    with run_live_platform(builder=None, platform={"deploy_timeout_seconds": 60.0}) as platform:
        yield platform


def pushed_ok(live: LivePlatform, tmp_path: Path, app: str, folder: str) -> list[str]:
    push = push_app(live, tmp_path, app, APPS / folder)
    assert push.returncode == 0, push.output[-3000:]
    assert "-----> Released v2" in push.remote_lines, push.output[-2000:]
    return push.remote_lines


def test_a_patch_pin_that_is_not_installed_uses_the_newest_of_its_minor(live, tmp_path):
    lines = pushed_ok(live, tmp_path, "patch-pin", "py_patch_pin")
    warning = next(
        line for line in lines if line.startswith(" !     Warning: runtime.txt asks for Python 3.11.3")
    )
    assert "using Python 3.11.7" in warning, warning
    assert served(live, "patch-pin") == b"python 3.11.7\n"


def test_a_python_36_pipenv_app_with_gunicorn_19(live, tmp_path):
    lines = pushed_ok(live, tmp_path, "py36", "py36_pipenv")
    text = "\n".join(lines)
    assert (
        "-----> Using Python 3.6.15: pinned by Pipfile.lock [requires] python_version (==3.6.*)" in lines
    ), text
    assert "-----> Upgrading pip for Python 3.6.15: pip install --upgrade 'pip<22'" in lines
    replaced = next(
        line for line in lines if "names the package index https://pypi.python.org/simple" in line
    )
    assert "installing from this machine's configured index instead" in replaced
    assert "file:///opt/pypi/simple" in replaced, "the machine's pip configuration is what pip uses"
    assert served(live, "py36") == b"python 3.6.15, gunicorn 19.9.0\n"


def test_a_stdlib_app_with_a_commented_procfile_and_no_manifest(live, tmp_path):
    lines = pushed_ok(live, tmp_path, "stdlib", "py_stdlib")
    assert "       Procfile declares types -> web, worker" in lines, "\n".join(lines)
    assert served(live, "stdlib").startswith(b"hello from "), "the web command ran, its comment ignored"


def test_a_poetry_app_installs_its_main_group_only(live, tmp_path):
    lines = pushed_ok(live, tmp_path, "poetry", "py_poetry")
    installed = next(line for line in lines if "Successfully installed" in line)
    assert "flask-3.1.3" in installed and "gunicorn-23.0.0" in installed
    assert "pytest" not in installed and "colorama" not in installed, installed
    assert served(live, "poetry") == b"poetry app on python 3.13\n"


def test_a_uv_app_takes_its_python_version_and_lock(live, tmp_path):
    lines = pushed_ok(live, tmp_path, "uv-app", "py_uv")
    assert "-----> Using Python 3.12.1: pinned by .python-version (==3.12.*)" in lines, "\n".join(lines)
    installed = next(line for line in lines if "Successfully installed" in line)
    assert "gunicorn-23.0.0" in installed and "packaging-25.0" in installed and "pytest" not in installed
    assert served(live, "uv-app") == b"uv app on python 3.12\n"


def test_a_push_whose_requirements_cannot_install_names_the_command(live, tmp_path):
    source = tmp_path / "bad-src"
    shutil.copytree(APPS / "py_patch_pin", source)
    (source / "requirements.txt").write_text("gunicorn==23.0.0\nno-such-package-moorage-test==1.0\n")
    push = push_app(live, tmp_path, "bad-reqs", source)
    assert push.returncode != 0
    failure = next(line for line in push.remote_lines if line.startswith(" !     `pip install"))
    assert failure.startswith(" !     `pip install -r requirements.txt` failed: pip could not install"), (
        failure
    )
    assert any("no-such-package-moorage-test" in line for line in push.remote_lines)
    assert "-----> Released v2" not in push.remote_lines
