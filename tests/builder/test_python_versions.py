"""Which interpreter a pin gets, among what the store offers (the buildpack's own resolver).

The offered list is what the builder hands every build (``STACK_PYTHONS``); the paths are
real executables, the versions those of this machine's store. Full builds that use them
are in test_python_apps_live.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "buildpacks" / "python" / "lib"))

import interpreters  # noqa: E402

OFFERED = {
    "STACK_PYTHONS": ":".join(f"{v}=/bin/true" for v in ("3.13.0", "3.12.1", "3.11.7", "3.11.2", "3.6.15"))
}


def chosen(app: Path) -> tuple[str, str, str | None]:
    interp, why, warning = interpreters.choose(app, OFFERED)
    return interp.text, why, warning


def test_an_exact_pin_that_is_installed_is_honoured_exactly(tmp_path):
    (tmp_path / "runtime.txt").write_text("python-3.11.2\n")
    assert chosen(tmp_path) == ("3.11.2", "pinned by runtime.txt (==3.11.2)", None)


def test_a_missing_patch_takes_the_newest_of_its_minor_with_a_warning_naming_both(tmp_path):
    (tmp_path / "runtime.txt").write_text("python-3.11.3\n")
    version, _, warning = chosen(tmp_path)
    assert version == "3.11.7"
    assert warning is not None and "asks for Python 3.11.3" in warning and "using Python 3.11.7" in warning
    (tmp_path / ".python-version").write_text("# pyenv\n3.6.6\n")
    assert chosen(tmp_path)[0] == "3.6.15"


@pytest.mark.parametrize(
    ("file", "text", "version"),
    [
        (".python-version", "3.13\n", "3.13.0"),
        ("runtime.txt", "python-3.11.x\n", "3.11.7"),
        ("Pipfile", '[requires]\npython_version = "3.6"\n', "3.6.15"),
        (
            "Pipfile.lock",
            json.dumps({"_meta": {"requires": {"python_version": "3.12"}}, "default": {}}),
            "3.12.1",
        ),
        ("pyproject.toml", '[project]\nrequires-python = ">=3.10,<3.12"\n', "3.11.7"),
    ],
)
def test_minor_pins_and_ranges_take_the_newest_match(tmp_path, file, text, version):
    (tmp_path / file).write_text(text)
    assert chosen(tmp_path)[0] == version
    assert chosen(tmp_path)[2] is None


@pytest.mark.parametrize(
    ("file", "text", "asks"),
    [
        ("runtime.txt", "python-3.5.2\n", "runtime.txt asks for Python ==3.5.2"),
        ("runtime.txt", "python-3.5.x\n", "runtime.txt asks for Python ==3.5.*"),
        (".python-version", "3.14\n", ".python-version asks for Python ==3.14.*"),
        (
            "pyproject.toml",
            '[project]\nrequires-python = ">=3.14"\n',
            "requires-python asks for Python >=3.14",
        ),
        # a PEP 440 specifier means what it says: no fallback to another patch
        (
            "pyproject.toml",
            '[project]\nrequires-python = "==3.11.3"\n',
            "requires-python asks for Python ==3.11.3",
        ),
    ],
)
def test_nothing_matching_lists_what_exists(tmp_path, file, text, asks):
    (tmp_path / file).write_text(text)
    with pytest.raises(interpreters.PinError) as failure:
        chosen(tmp_path)
    assert asks in str(failure.value)
    assert "Available: 3.13.0, 3.12.1, 3.11.7, 3.11.2, 3.6.15" in str(failure.value)
