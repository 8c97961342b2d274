"""Root's reads and writes next to files the unprivileged service user controls.

Why: the embedded servers run as the service user, and code running as that user (a
compromised redis-server or mariadbd) can put a symlink where root is about to write,
chmod or chown, and so make root change any file on the machine. So the servers' folders
stay root's, the service user owns only the subfolders its server writes (``data/``,
``run/``), and every file root touches is opened here: created afresh with ``O_EXCL |
O_NOFOLLOW`` (a planted link or file makes the open fail instead of being followed), its
mode and owner set on the descriptor, and read with ``O_NOFOLLOW`` as a regular file only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from moorage.embedded.users import ServiceUser
from moorage.errors import ProviderError

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def write_private(path: Path, data: bytes, *, mode: int = 0o600, uid: int = -1, gid: int = -1) -> None:
    """Replace ``path`` with ``data`` in a new file (0600 unless ``mode``), never following a link."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # unlink removes a planted link itself, not its target
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_for_server(path: Path, data: bytes, user: ServiceUser) -> None:
    """A file root keeps and the server only reads: ``root:<service group>`` 0640."""
    if user.drops_root:
        write_private(path, data, mode=0o640, uid=0, gid=user.gid if user.gid is not None else -1)
    else:
        write_private(path, data)


def write_owned_by(path: Path, data: bytes, user: ServiceUser) -> None:
    """A file the server reads and rewrites itself (Redis's aclfile): the service user's, 0600."""
    if user.drops_root:
        write_private(path, data, uid=user.uid or 0, gid=user.gid if user.gid is not None else -1)
    else:
        write_private(path, data)


def read_text(path: Path) -> str:
    """The text of a regular file, refusing a symlink (FileNotFoundError when missing)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ProviderError(f"{path} is not a regular file")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def read_first(*paths: Path) -> str:
    """The text of the first of ``paths`` that exists ('' if none): a file that moved."""
    for path in paths:
        try:
            return read_text(path)
        except FileNotFoundError:
            continue
    return ""


def open_append(path: Path, owner: ServiceUser | None = None) -> int:
    """A descriptor appending to ``path`` (a log or a lock, created 0600); a planted link is replaced.

    ``owner``: the file is given to that user (through the descriptor), for a log its
    server also writes itself.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        path.unlink(missing_ok=True)  # a symlink (ELOOP) or something else: start a new log
        fd = os.open(path, flags | os.O_EXCL, 0o600)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:  # a hard link could name another file
        os.close(fd)
        raise ProviderError(f"{path} is not a regular file of its own; remove it")
    if owner is not None and owner.uid is not None:
        os.fchown(fd, owner.uid, owner.gid if owner.gid is not None else -1)
    return fd


def root_folder(path: Path, mode: int = 0o711) -> None:
    """``path`` as a folder of root's (when root) that the service user may only traverse."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    _check_folder(path)
    if os.geteuid() == 0:
        os.chown(path, 0, 0, follow_symlinks=False)
    os.chmod(path, mode)  # a folder (checked), in a folder only root can change


def server_folder(path: Path, user: ServiceUser, mode: int = 0o700) -> None:
    """``path`` (inside a root folder) as a folder the server writes: the service user's."""
    path.mkdir(mode=mode, exist_ok=True)
    _check_folder(path)
    os.chmod(path, mode)
    user.chown(path)


def _check_folder(path: Path) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ProviderError(f"{path} is not a folder (a link or a file is in its place); remove it")
