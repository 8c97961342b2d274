"""The nginx master as a process: stopping it, whether it lives, its workers' uids.

Why apart from ``nginx.py``: these read /proc and send signals, and know nothing of
routes; the router calls them at start and stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    for sig, wait in ((signal.SIGQUIT, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        try:
            os.kill(process.pid, sig)
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def kill_and_wait(pid: int, grace: float) -> None:
    for sig, wait in ((signal.SIGQUIT, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def worker_uids(master: int) -> list[int]:
    """The real uid of each child of ``master`` (from /proc)."""
    uids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(
                line.split(":", 1)
                for line in Path(entry.path, "status").read_text().splitlines()
                if ":" in line
            )
            if int(fields["PPid"]) == master:
                uids.append(int(fields["Uid"].split()[0]))
        except (OSError, KeyError, ValueError):
            continue
    return uids
