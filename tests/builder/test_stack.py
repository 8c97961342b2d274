"""The interpreter store: pyenv's interpreters copied out of /root, and proved to run there.

These copy the machine's real pyenv build of 3.6 (the smallest) into a store of the
test's own and run it as the unprivileged user, who cannot enter ``/root`` (0700): only
an interpreter that really runs from its new place passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from moorage.cli.main import cli
from moorage.platform.builder.python_versions import stack_pythons
from moorage.platform.builder.stack import StackError, StackStore, install, run_checked

PYENV_36 = Path("/root/.pyenv/versions/3.6.15")


@pytest.fixture
def store_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="moorage-stack-test-"))
    path.chmod(0o755)
    yield path / "stack"
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def one_pyenv(tmp_path: Path) -> Path:
    """A pyenv root holding only the machine's 3.6.15 (a link to the real one)."""
    assert PYENV_36.is_dir(), "pyenv's 3.6.15 is part of this machine's set-up"
    (tmp_path / "versions").mkdir()
    (tmp_path / "versions" / "3.6.15").symlink_to(PYENV_36)
    (tmp_path / "versions" / "2.7.18").mkdir()  # Python 2 is never offered
    return tmp_path


def test_a_copied_pyenv_interpreter_runs_from_the_store_as_the_app_user(store_root, one_pyenv):
    assert os.stat("/root").st_mode & 0o007 == 0, "/root stays private"
    lines: list[str] = []
    installed = install(StackStore(store_root), [one_pyenv], "nobody", lines.append, uv=None)

    copied = next(p for p in installed if p.version == "3.6.15")
    assert copied.path == str(store_root / "python" / "3.6.15" / "bin" / "python3")
    assert f"Python 3.6.15: copied from {one_pyenv}/versions/3.6.15" in "\n".join(lines)
    assert not [p for p in installed if p.version.startswith("2.")]
    # As nobody, from the store: the right version, its own library, a working venv whose
    # python is a copy (as the buildpack's relocatable venvs have).
    venv = store_root.parent / "venv"
    venv.mkdir()
    shutil.chown(venv, "nobody")
    made = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            copied.path,
            "-m",
            "venv",
            "--copies",
            str(venv),
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert made.returncode == 0, made.stderr
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sys, ssl; print(sys.version.split()[0], sys.base_prefix)",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == ["3.6.15", str(store_root / "python" / "3.6.15")]
    readelf = subprocess.run(
        ["readelf", "-d", copied.path.replace("python3", "python3.6")], capture_output=True, text=True
    )
    assert "/root" not in readelf.stdout and f"[{store_root}/python/3.6.15/lib]" in readelf.stdout
    # Nothing of root's site-packages came along; everything is root's and world-readable.
    site = store_root / "python" / "3.6.15" / "lib" / "python3.6" / "site-packages"
    assert list(site.iterdir()) == []
    for folder, dirs, files in os.walk(store_root / "python"):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                assert not os.readlink(path).startswith("/"), path
                continue
            st = os.stat(path)
            assert st.st_uid == 0 and (st.st_mode & 0o022) == 0 and st.st_mode & 0o004, path
    # Builds are offered what the store lists.
    assert "3.6.15=" + copied.path in stack_pythons(store_root).split(":")


HELLO_C = """#include <Python.h>
static PyObject *hi(PyObject *self, PyObject *args) { return PyUnicode_FromString("hi from C"); }
static PyMethodDef methods[] = {{"hi", hi, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "hello", NULL, -1, methods};
PyMODINIT_FUNC PyInit_hello(void) { return PyModule_Create(&module); }
"""


def test_c_extensions_compile_against_a_copied_interpreter(store_root, one_pyenv):
    """psycopg2-style builds from source: headers and compiler flags point into the store."""
    installed = install(StackStore(store_root), [one_pyenv], "nobody", lambda _line: None)
    python = next(p.path for p in installed if p.version == "3.6.15")
    work = store_root.parent / "ext"
    work.mkdir()
    (work / "hello.c").write_text(HELLO_C)
    (work / "setup.py").write_text(
        'from setuptools import Extension, setup\nsetup(name="hello", ext_modules=[Extension("hello", ["hello.c"])])\n'
    )
    shutil.chown(work, "nobody")
    script = f"{python} -m venv v && v/bin/python setup.py -q build_ext --inplace && v/bin/python -c 'import hello; print(hello.hi())'"
    built = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", "-c", script],
        cwd=work,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(work)},
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    assert built.stdout.strip().endswith("hi from C")


def test_a_plain_copy_without_relocation_is_caught(store_root):
    """The check is real: pyenv's files copied as they are still look for /root and fail."""
    dest = store_root / "plain"
    shutil.copytree(PYENV_36, dest, symlinks=True, ignore=shutil.ignore_patterns("test", "site-packages"))
    with pytest.raises(StackError, match="does not run as nobody"):
        run_checked(dest / "bin" / "python3.6", dest, "nobody")


def test_stack_lists_the_store_and_a_second_install_copies_nothing(store_root, one_pyenv, monkeypatch):
    install(StackStore(store_root), [one_pyenv], "nobody", lambda _line: None)
    again: list[str] = []
    # Real uv, its download mirror unreachable: what a machine without internet sees.
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", "http://127.0.0.1:9/python-build-standalone")
    uv = str(Path(sys.executable).parent / "uv")
    install(StackStore(store_root), [one_pyenv], "nobody", again.append, uv=uv, uv_versions=["3.14"])
    assert "Python 3.6.15: already installed" in "\n".join(again)
    assert any(line.startswith("Python 3.14: not fetched (uv python install failed: ") for line in again), (
        again
    )
    assert [p.version for p in StackStore(store_root).pythons()][-1] == "3.6.15"

    result = CliRunner().invoke(cli, ["stack"], env={"MOORAGE_PLATFORM_STACK_DIR": str(store_root)})
    assert result.exit_code == 0, result.output
    assert f"3.6.15     {store_root}/python/3.6.15/bin/python3" in result.output
    assert "=== Go\ngo1." in result.output


def test_without_a_store_builds_get_the_systems_interpreters(store_root):
    offered = stack_pythons(store_root).split(":")
    assert "/usr/bin/python3.11" in offered
    assert not [p for p in offered if "/root" in p]
