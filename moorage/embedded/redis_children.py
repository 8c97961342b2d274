"""The redis-server processes this process started, kept so that they are reaped when they exit.

Why: a dedicated instance's server is started by whichever thread needs it first (a
request, a worker, the supervisor) and outlives that thread. A child that exits stays a
zombie until its parent waits for it; the supervisor calls :func:`reap` on every round,
so crashed servers do not pile up as zombies in a long-running broker. Servers whose
parent process is gone are reparented and reaped by the system.
"""

from __future__ import annotations

import subprocess
import threading

_children: list[subprocess.Popen[bytes]] = []
_lock = threading.Lock()


def adopt(child: subprocess.Popen[bytes]) -> None:
    """Remember ``child`` until it has exited and been waited for."""
    with _lock:
        _children.append(child)


def reap() -> int:
    """Wait for the children that have exited (without blocking); how many were reaped."""
    with _lock:
        done = [c for c in _children if c.poll() is not None]
        for child in done:
            _children.remove(child)
        return len(done)
