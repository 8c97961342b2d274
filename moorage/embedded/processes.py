"""Running server binaries as the service user, and waiting for them without sleeping blindly.

Why a module: the embedded servers start, probe and stop processes the same way: with a
clean environment, as the unprivileged service user, and by polling a condition until a
deadline (never a fixed sleep), reporting what was awaited on timeout.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from moorage.embedded.files import open_append, read_text
from moorage.embedded.users import ServiceUser
from moorage.errors import ProviderError


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: no MOORAGE_* secrets or PG*/REDIS* variables leak in."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def run_as(
    user: ServiceUser, argv: Sequence[str | os.PathLike[str]], *, cwd: Path, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion as ``user``; output captured, never raises on exit status."""
    try:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=cwd,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            **user.popen_kwargs(),  # type: ignore[arg-type]
        )
    except subprocess.TimeoutExpired as exc:
        raise ProviderError(f"{Path(str(argv[0])).name} did not finish within {timeout:.0f} s") from exc


def start_detached(
    user: ServiceUser,
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    log: Path,
    log_owner: ServiceUser | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as ``user`` in a session of its own, so it outlives Moorage; output appended to ``log``."""
    log_fd = open_append(log, owner=log_owner)
    try:
        return subprocess.Popen(
            [str(a) for a in argv],
            cwd=cwd,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            **user.popen_kwargs(),  # type: ignore[arg-type]
        )
    finally:
        os.close(log_fd)


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition`` until it is true; raise ProviderError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ProviderError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (and is not a zombie)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def read_pidfile(path: Path) -> int | None:
    """The pid a server wrote (in a folder it owns, so a link there is refused, not followed)."""
    try:
        first = read_text(path).splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError, ProviderError):
        return None


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages ('' if unreadable)."""
    try:
        return "\n".join(read_text(path).splitlines()[-lines:])
    except (OSError, ProviderError):
        return ""
