"""A release's binding files on this machine, readable by the app's uid alone.

Why apart from the release directory: that one is readable by everyone (a slug holds no
secrets), while these files are credentials. They live in
``<data_dir>/bindings/<app>/v<N>/<binding>/<file>`` (the servicebinding.io layout, with
``SERVICE_BINDING_ROOT`` naming ``v<N>``): ``bindings/`` and ``bindings/<app>/`` belong to
Moorage and may be passed but not listed (0711); ``v<N>/``, each binding's folder (0500)
and each file (0400) belong to the app's own uid, so no other app — each runs under a uid
of its own (``ReleaseSpec.uid``, see ``identity.app_identity``) — can list or read them.

Like the release directory, ``v<N>`` is written once (in a staging folder, renamed into
place) and never changed: a rotation or an unbind is a new release with a folder of its
own, and a rollback's release gets the files of the credentials that stand now (see
``controller/binding_files``). Folders of releases no process uses any more are removed
after each roll, so revoked credentials do not stay on disk.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from moorage.platform.identity import AppUser
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.release_dir import remove_tree

SERVICE_BINDING_ROOT = "SERVICE_BINDING_ROOT"


def app_folder(data_dir: Path, app: str) -> Path:
    return data_dir / "bindings" / app


def binding_root(data_dir: Path, release: ReleaseSpec) -> Path | None:
    """The release's ``SERVICE_BINDING_ROOT``, or None when it has no bindings."""
    if not release.binding_files:
        return None
    return app_folder(data_dir, release.app) / f"v{release.version}"


def materialise(data_dir: Path, release: ReleaseSpec, user: AppUser) -> Path | None:
    """Write the release's binding files once (atomically); their root, or None."""
    root = binding_root(data_dir, release)
    if root is None or root.is_dir():
        return root
    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    for folder in (parent.parent, parent):
        folder.chmod(0o711)
    staging = Path(tempfile.mkdtemp(prefix=f".v{release.version}-", dir=parent))
    try:
        for binding, files in release.binding_files.items():
            folder = staging / binding
            folder.mkdir(mode=0o700)
            for name, content in files.items():
                _write(folder / name, content, user)
            _own(folder, user, 0o500)
        _own(staging, user, 0o500)
        os.replace(staging, root)
    except OSError:
        remove_tree(staging)
        if root.is_dir():  # a deploy and a one-off run of this release wrote them at once
            return root
        raise
    except BaseException:
        remove_tree(staging)
        raise
    return root


def _write(path: Path, content: str, user: AppUser) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    _own(path, user, 0o400)


def _own(path: Path, user: AppUser, mode: int) -> None:
    if user.drop:
        os.chown(path, user.uid, user.gid, follow_symlinks=False)
    path.chmod(mode)


def prune(data_dir: Path, app: str, keep: set[int]) -> None:
    """Remove the binding folders of the app's releases other than ``keep``."""
    folder = app_folder(data_dir, app)
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.name.startswith("."):
            continue  # another thread's staging folder
        version = child.name[1:] if child.name.startswith("v") else ""
        if not (version.isdigit() and int(version) in keep):
            remove_tree(child)


def binding_env(release: ReleaseSpec, root: Path | None) -> dict[str, str]:
    """``SERVICE_BINDING_ROOT`` and the vars that name one binding file, as real paths."""
    if root is None:
        return {}
    return {SERVICE_BINDING_ROOT: str(root), **{k: f"{root}/{v}" for k, v in release.binding_paths.items()}}
