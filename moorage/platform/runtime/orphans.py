"""Process groups left behind by a Moorage that died without stopping its children.

Why: ``close()`` stops every child, but a Moorage killed with SIGKILL leaves its app
processes running in their own sessions, holding ports and serving an old release.
The runtime records the process groups of each app in ``<data_dir>/run/<app>.json``
(pid plus the kernel's start time, so a recycled pid is never signalled) and, before
it starts the app again, kills the groups a previous Moorage left.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def record_processes(data_dir: Path, app: str, pids: Iterable[int]) -> None:
    path = _path(data_dir, app)
    entries = [{"pid": pid, "start": start} for pid in pids if (start := _start_time(pid)) is not None]
    if not entries:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries))
    os.replace(tmp, path)


def kill_orphans(data_dir: Path, app: str) -> int:
    """SIGKILL the recorded process groups that still run; returns how many."""
    path = _path(data_dir, app)
    try:
        entries = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0
    killed = 0
    for entry in entries if isinstance(entries, list) else []:
        try:
            pid, start = int(entry["pid"]), entry["start"]
        except (KeyError, TypeError, ValueError):
            continue
        if pid > 1 and _start_time(pid) == start:
            try:
                os.killpg(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    path.unlink(missing_ok=True)
    if killed:
        log.warning("killed processes left by a previous Moorage", extra={"app": app, "count": killed})
    return killed


def _path(data_dir: Path, app: str) -> Path:
    return data_dir / "run" / f"{app}.json"


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
