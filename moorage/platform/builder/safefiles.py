"""Reading and writing files in a build folder that an untrusted build user controls.

Why: after ``bin/compile`` the build folder belongs to the build user, who may have left
symlinks there (``Procfile -> /etc/shadow``, ``.profile.d -> /etc/cron.d``). The
controller (often root) reads the Procfile and writes ``.release``, a generated Procfile
and ``.profile.d`` scripts into that folder. Every such access goes through these
functions: the folder is opened once with ``O_NOFOLLOW`` and the file relative to it,
also with ``O_NOFOLLOW``, so no link is ever followed and no path is looked up twice.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from moorage.platform.builder.processes import BuildFailed

#: A Procfile or similar is small; anything larger is refused rather than read whole.
MAX_BYTES = 1024 * 1024


def _open_dir(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise BuildFailed(f"{path.name} in the build must be a folder, not a link or a file") from None
        raise


def read_text(directory: Path, name: str) -> str | None:
    """The text of ``directory/name`` if it is a regular file; None if it does not exist."""
    dfd = _open_dir(directory)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BuildFailed(f"{name} in the build is a link; it must be a regular file") from None
            raise
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise BuildFailed(f"{name} in the build must be a regular file")
            data = fh.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise BuildFailed(f"{name} in the build is larger than {MAX_BYTES // 1024} KiB")
        return data.decode(errors="replace")
    finally:
        os.close(dfd)


def write_text(directory: Path, name: str, text: str) -> None:
    """Replace ``directory/name`` with a new regular file, whatever (or whichever link) was there."""
    dfd = _open_dir(directory)
    try:
        try:
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            raise BuildFailed(f"{name} in the build is a folder; it must be a file") from None
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dfd)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    finally:
        os.close(dfd)


def make_dir(directory: Path, name: str) -> Path:
    """``directory/name`` as a real folder (created if missing; a link there is refused)."""
    dfd = _open_dir(directory)
    try:
        try:
            os.mkdir(name, 0o755, dir_fd=dfd)
        except FileExistsError:
            pass
    finally:
        os.close(dfd)
    path = directory / name
    os.close(_open_dir(path))  # refuses a link or a file standing in for the folder
    return path
