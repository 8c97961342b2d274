"""Per-app log streams of the local runtime: a ring buffer, a file, and followers.

Why: ``moorage logs`` shows the last lines of everything an app and the platform said
about it (``app[web.1]``, ``moorage[deploy]``, ``moorage[router]``), and ``logs -f``
follows new lines as they come. The buffer answers quickly; the file
(``<data_dir>/logs/<app>.log``) survives a restart of Moorage, and a new buffer is
primed from its tail.
"""

from __future__ import annotations

import collections
import datetime as dt
import errno
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from moorage.platform.runtime.base import LogLine

#: Lines kept in memory per app.
BUFFER_LINES = 2000
#: Longest line kept; longer ones are cut (an app printing a blob must not eat memory).
MAX_LINE = 8192


class LogBook:
    """One app's log stream. Thread-safe; ``follow`` blocks until new lines arrive."""

    def __init__(self, path: Path, capacity: int = BUFFER_LINES) -> None:
        self.path = path
        self._lines: collections.deque[LogLine] = collections.deque(maxlen=capacity)
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()
        # App output often carries secrets: only Moorage may read it (apps share one uid).
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.chmod(0o700)
        self._prime()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, source: str, text: str) -> None:
        line = LogLine(dt.datetime.now(dt.UTC), source, text.rstrip("\r\n")[:MAX_LINE])
        with self._cond:
            if self._closed:
                return
            self._lines.append(line)
            self._count += 1
            self._file.write(f"{line.timestamp.isoformat()} {line.source}: {line.line}\n")
            self._file.flush()
            self._cond.notify_all()

    def read(self, lines: int = 100, follow: bool = False) -> Iterator[LogLine]:
        with self._cond:
            snapshot = list(self._lines)[-lines:] if lines > 0 else []
            seen = self._count
        yield from snapshot
        while follow:
            with self._cond:
                self._cond.wait_for(lambda seen=seen: self._count > seen or self._closed, timeout=1.0)
                if self._closed:
                    return
                fresh = self._count - seen
                new = list(self._lines)[-fresh:] if fresh else []
                seen = self._count
            yield from new

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._file.close()
            self._cond.notify_all()

    def _prime(self) -> None:
        """Fill the buffer from the end of the file a previous Moorage wrote."""
        try:
            with self.path.open("rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 256 * 1024))
                tail = f.read().decode("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return
        for raw in tail[-(self._lines.maxlen or BUFFER_LINES) :]:
            parsed = _parse(raw)
            if parsed is not None:
                self._lines.append(parsed)


def _parse(raw: str) -> LogLine | None:
    stamp, _, rest = raw.partition(" ")
    source, sep, text = rest.partition(": ")
    if not sep:
        return None
    try:
        when = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return LogLine(when, source, text)


class FileTail:
    """Reads lines appended to a file since the last call (nginx's access logs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.exists() else 0
        self._partial = b""

    def read_new(self) -> list[str]:
        try:
            with os.fdopen(_open_log(self.path), "rb") as f:
                size = f.seek(0, 2)
                if size < self._offset:
                    self._offset = 0
                f.seek(self._offset)
                data = f.read(1024 * 1024)
                self._offset = f.tell()
        except (FileNotFoundError, UnsafeLogFile):
            return []
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [c.decode("utf-8", errors="replace") for c in complete]


class UnsafeLogFile(OSError):
    """The tailed path is not a regular file of its folder's owner: it is never read."""


def _open_log(path: Path) -> int:
    """Opens ``path`` for reading only if it is a regular file owned by its folder's owner.

    Why: the router's access folder belongs to the nginx worker user, and Moorage reads it
    as root. Anything running as that user could put a symlink (to ``/etc/shadow``, a
    key), a hard link to a root-owned file, or a FIFO (a blocked reader) where an access
    log belongs, and the secret would stream into an app's ``moorage logs``. The folder's
    owner is the worker user (the router chowns it; that user cannot change it).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeLogFile(errno.ELOOP, "a symlink, not followed", str(path)) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.stat(path.parent).st_uid:
        os.close(fd)
        raise UnsafeLogFile(errno.EPERM, "not a regular file of the folder's owner", str(path))
    return fd
