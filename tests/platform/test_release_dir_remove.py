"""Removing an app's tree never changes what a link in it points to.

The trees (releases, binding files) belong to the app's user, who can put a link where a
folder was; rmtree's error handler makes folders writable and retries, and must do that
without following the link to a folder elsewhere.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from moorage.platform.runtime.release_dir import remove_tree, writable_retry


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    folder = tmp_path / "victim"
    folder.mkdir(mode=0o700)
    (folder / "f").write_text("precious\n")
    return folder


def test_the_retry_does_not_chmod_or_delete_through_a_link(tmp_path: Path, victim: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link").symlink_to(victim)
    with pytest.raises(OSError, match="through a link"):
        writable_retry(os.unlink, str(tree / "link" / "f"), None)
    writable_retry(os.unlink, str(tree / "link"), None)  # the link itself goes
    assert not os.path.lexists(tree / "link")
    assert stat.S_IMODE(victim.stat().st_mode) == 0o700
    assert (victim / "f").read_text() == "precious\n"


def test_a_read_only_tree_with_a_link_out_is_removed_and_the_target_kept(
    tmp_path: Path, victim: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("x")
    (tree / "sub" / "out").symlink_to(victim)
    for folder in (tree / "sub", tree):
        folder.chmod(0o555)
    remove_tree(tree)
    assert not tree.exists()
    assert stat.S_IMODE(victim.stat().st_mode) == 0o700
    assert (victim / "f").read_text() == "precious\n"
