"""The Python buildpack's readers: lock files to pinned requirements, version pins.

These run the buildpack's own modules (what bin/compile runs) on real lock-file
formats; the full builds with pip are in test_python.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "buildpacks" / "python" / "lib"))

import interpreters  # noqa: E402
import lockfiles  # noqa: E402


def test_pipfile_lock_gives_pinned_default_packages(tmp_path):
    (tmp_path / "Pipfile.lock").write_text(
        json.dumps(
            {
                "default": {
                    "flask": {"version": "==3.1.3"},
                    "colorama": {"version": "==0.4.6", "markers": "os_name == 'nt'"},
                },
                "develop": {"pytest": {"version": "==8.0.0"}},
            }
        )
    )
    plan = lockfiles.plan(tmp_path)
    assert plan.source == "Pipfile.lock"
    assert plan.lines == ["colorama==0.4.6 ; os_name == 'nt'", "flask==3.1.3"]


def test_poetry_lock_keeps_main_group_only(tmp_path):
    (tmp_path / "poetry.lock").write_text(
        '[[package]]\nname = "flask"\nversion = "3.1.3"\ngroups = ["main"]\n\n'
        '[[package]]\nname = "pytest"\nversion = "8.0.0"\ngroups = ["dev"]\n\n'
        '[[package]]\nname = "click"\nversion = "8.1.7"\ncategory = "main"\n'
    )
    assert lockfiles.plan(tmp_path).lines == ["flask==3.1.3", "click==8.1.7"]


def test_poetry_18_lock_without_groups_keeps_what_the_main_dependencies_lead_to(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.poetry.dependencies]\npython = "^3.11"\nFlask = "^3.1"\n\n'
        '[tool.poetry.group.dev.dependencies]\npytest = "^8.0"\n'
    )
    (tmp_path / "poetry.lock").write_text(
        '[[package]]\nname = "flask"\nversion = "3.1.3"\n[package.dependencies]\nclick = ">=8.1.3"\n\n'
        '[[package]]\nname = "click"\nversion = "8.1.7"\n\n'
        '[[package]]\nname = "pytest"\nversion = "8.0.0"\n[package.dependencies]\npluggy = ">=1.3"\n\n'
        '[[package]]\nname = "pluggy"\nversion = "1.4.0"\n'
    )
    assert lockfiles.plan(tmp_path).lines == ["flask==3.1.3", "click==8.1.7"]


def test_uv_lock_walks_the_project_graph_without_dev_dependencies(tmp_path):
    (tmp_path / "uv.lock").write_text(
        "version = 1\n\n"
        '[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
        'dependencies = [{ name = "flask" }]\n'
        '[package.dev-dependencies]\ndev = [{ name = "pytest" }]\n\n'
        '[[package]]\nname = "flask"\nversion = "3.1.3"\nsource = { registry = "https://pypi.org/simple" }\n'
        'dependencies = [{ name = "click" }]\n\n'
        '[[package]]\nname = "click"\nversion = "8.1.7"\nsource = { registry = "https://pypi.org/simple" }\n\n'
        '[[package]]\nname = "pytest"\nversion = "8.0.0"\nsource = { registry = "https://pypi.org/simple" }\n'
    )
    assert lockfiles.plan(tmp_path).lines == ["click==8.1.7", "flask==3.1.3"]


def test_pyproject_dependencies_and_build_system(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["django==5.2.19"]\n')
    plan = lockfiles.plan(tmp_path)
    assert plan.lines == ["django==5.2.19"] and not plan.install_project
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\n[project]\nname = "x"\ndependencies = []\n'
    )
    assert lockfiles.plan(tmp_path).install_project


def test_broken_declarations_say_what_is_wrong(tmp_path):
    (tmp_path / "Pipfile").write_text("[packages]\n")
    with pytest.raises(lockfiles.LockError, match="run `pipenv lock`"):
        lockfiles.plan(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(lockfiles.LockError, match="pyproject.toml is not valid TOML"):
        lockfiles.plan(tmp_path)


@pytest.mark.parametrize(
    ("version", "spec", "ok"),
    [
        ((3, 12, 1), ">=3.10,<3.13", True),
        ((3, 13, 0), ">=3.10,<3.13", False),
        ((3, 12, 1), "==3.12.*", True),
        ((3, 11, 7), "~=3.11", True),
        ((3, 10, 2), "~=3.11", False),
        ((3, 12, 1), "==3.12.1", True),
        ((3, 12, 1), "!=3.12.1", False),
    ],
)
def test_requires_python_specifiers(version, spec, ok):
    assert interpreters.satisfies(version, spec) is ok


def test_pins_are_read_in_order(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nrequires-python = ">=3.11"\n')
    assert interpreters.read_pin(tmp_path) == ("pyproject.toml requires-python", ">=3.11")
    (tmp_path / "runtime.txt").write_text("python-3.12.1\n")
    assert interpreters.read_pin(tmp_path) == ("runtime.txt", "==3.12.1")
    (tmp_path / ".python-version").write_text("3.12\n")
    assert interpreters.read_pin(tmp_path) == (".python-version", "==3.12.*")
    (tmp_path / ".python-version").write_text("latest\n")
    with pytest.raises(interpreters.PinError, match="write a version such as 3.12"):
        interpreters.read_pin(tmp_path)
