"""Which interpreters builds may use, and that offering them never opens /root by default.

A stand-in pyenv tree in a temp folder plays ``/root/.pyenv`` (its top folder 0700 as
``/root`` is); its "interpreter" is a shell script, since only paths and modes matter here.
"""

from __future__ import annotations

import stat
from pathlib import Path

from moorage.platform.builder.python_versions import stack_pythons

APP_UID = 65534  # nobody


def _fake_root_with_pyenv(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    exe = root / ".pyenv" / "versions" / "3.99.0" / "bin" / "python3"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    tmp_path.chmod(0o755)
    root.chmod(0o700)
    return root, exe


def test_pyenv_behind_a_private_root_is_not_offered_and_root_stays_private(tmp_path: Path) -> None:
    root, exe = _fake_root_with_pyenv(tmp_path)
    offered = stack_pythons(APP_UID, share_root_pyenv=False, pyenv_root=root / ".pyenv")
    assert str(exe) not in offered
    assert "=/usr/bin/python3." in offered, "the system's interpreters are offered"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_sharing_pyenv_grants_search_but_never_listing(tmp_path: Path) -> None:
    root, exe = _fake_root_with_pyenv(tmp_path)
    offered = stack_pythons(APP_UID, share_root_pyenv=True, pyenv_root=root / ".pyenv")
    assert f"3.99.0={exe}" in offered.split(":")
    assert stat.S_IMODE(root.stat().st_mode) == 0o701, "o+x only: names under it cannot be listed"
