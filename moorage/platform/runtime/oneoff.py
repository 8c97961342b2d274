"""One-off commands (``moorage run``): start, read the output as it comes, stop in time.

Why apart from the runtime's supervision: a one-off command is not supervised or
restarted; it runs once, in its own process group, and its output is read as it comes
so an endless printer (``yes``) costs at most ``limit`` bytes, not everything it printed.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from moorage.errors import UnprocessableError
from moorage.platform.identity import AppUser

#: Exit code reported when the command ran out of time (as ``timeout(1)`` does).
TIMED_OUT = 124


def run(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, user: AppUser, timeout: float, limit: int
) -> tuple[int, str]:
    """Run ``argv`` as ``user``; its exit code and the last ``limit`` bytes of its output."""
    try:
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **user.popen_kwargs(),  # type: ignore[arg-type]
        )
    except OSError as exc:
        raise UnprocessableError(f"cannot run {argv[-1]!r}: {exc.strerror}") from None
    except ValueError as exc:  # a NUL byte in the command or the environment
        raise UnprocessableError(f"cannot run {argv[-1]!r}: {exc}") from None
    try:
        output, timed_out = _read_capped(process, timeout, limit)
        if timed_out:
            kill_group(process.pid)
            output += f"\nmoorage: the command was stopped after {timeout:g}s\n".encode()
            code = TIMED_OUT
        else:
            code = process.wait()
    finally:
        kill_group(process.pid)  # whatever it left running in its group
        process.wait()
    return code, output.decode("utf-8", errors="replace")


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_capped(process: subprocess.Popen[bytes], timeout: float, limit: int) -> tuple[bytes, bool]:
    """The last ``limit`` bytes of ``process``'s output; True if ``timeout`` ran out first."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    tail = bytearray()
    fd = process.stdout.fileno()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(tail), True
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return bytes(tail), False
        tail += chunk
        if len(tail) > limit:
            del tail[: len(tail) - limit]
