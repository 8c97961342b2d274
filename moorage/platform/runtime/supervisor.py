"""One supervised app process: spawn, capture output, health-check, restart on crash.

Why a class per process: each ``web.1`` has its own life (port, pid, restarts, state)
that ``moorage ps`` shows, and its own monitor thread that restarts it with exponential
backoff when it exits, so one crashing process never blocks another or a deploy.

Each process is a new session (its own process group), so stopping it signals
everything it started: SIGTERM to the group, SIGKILL after the grace period.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from moorage.platform.identity import AppUser
from moorage.platform.runtime.base import ProcessStatus
from moorage.platform.runtime.health import probe

#: A process that ran at least this long before exiting starts a new backoff series.
STABLE_SECONDS = 30.0
#: Consecutive quick crashes after which the process counts as crash-looping.
CRASH_LOOP = 5
#: Lines of output kept per process for error messages.
TAIL_LINES = 20


@dataclass(frozen=True)
class Launch:
    """How to start the process: argv, environment, folder and user."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    user: AppUser


class ManagedProcess:
    """A ``type.number`` process of one release, restarted until ``stop``."""

    def __init__(
        self,
        *,
        type: str,
        number: int,
        release: int,
        port: int | None,
        launch: Launch,
        write_log: Callable[[str, str], None],
        on_change: Callable[[ManagedProcess], None],
        backoff: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        self.type = type
        self.number = number
        self.release = release
        self.port = port
        self.launch = launch
        self.write_log = write_log
        self.on_change = on_change
        self.backoff = backoff
        self.state = "starting"
        self.healthy = False
        self.restarts = 0
        self.exits = 0
        self.quick_crashes = 0
        self.last_exit: int | None = None
        self.started_at: dt.datetime | None = None
        self.pid: int | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"moorage-{self.name}", daemon=True)

    @property
    def name(self) -> str:
        return f"{self.type}.{self.number}"

    @property
    def is_web(self) -> bool:
        return self.port is not None

    @property
    def crash_looping(self) -> bool:
        return self.quick_crashes >= CRASH_LOOP

    def start(self) -> None:
        self._thread.start()

    def status(self) -> ProcessStatus:
        return ProcessStatus(
            type=self.type,
            number=self.number,
            state=self.state,
            release=self.release,
            started_at=self.started_at,
            restarts=self.restarts,
            port=self.port,
            pid=self.pid,
        )

    def wait_ready(self, deadline: float) -> str | None:
        """Wait until up; return why not (exited while booting, or timed out), None if up."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.state == "up" or self.exits > 0, timeout=deadline - time.monotonic()
            )
            if self.state == "up":
                return None
            if self.exits > 0:
                return f"{self.name} exited with status {self.last_exit} while booting"
            what = f"did not answer on port {self.port}" if self.is_web else "did not start"
            return f"{self.name} {what} within the deploy timeout"

    def stop(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds; no restart after."""
        self._stop.set()
        self._set_state("stopping")
        process = self._process
        if process is not None and process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.write_log(f"moorage[{self.name}]", f"Stopping process with SIGKILL after {grace:g}s")
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        # Children left in the group (the shell's background jobs) go too.
        if process is not None:
            _signal_group(process.pid, signal.SIGKILL)
            _wait_group_gone(process.pid, 2.0)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=grace + 5)
        self._set_state("down")

    # -- the monitor thread --------------------------------------------------------------

    def _run(self) -> None:
        source = f"app[{self.name}]"
        while not self._stop.is_set():
            started = time.monotonic()
            code = self._run_once(source)
            if self._stop.is_set():
                break
            self.exits += 1
            self.last_exit = code
            self.healthy = False
            ran = time.monotonic() - started
            self.quick_crashes = self.quick_crashes + 1 if ran < STABLE_SECONDS else 1
            self._set_state("crashed")
            self.write_log(f"moorage[{self.name}]", f"Process exited with status {code}")
            delay = min(self.backoff[0] * 2 ** (self.quick_crashes - 1), self.backoff[1])
            if self._stop.wait(delay):
                break
            self.restarts += 1
            self.write_log(f"moorage[{self.name}]", f"Restarting (restart {self.restarts})")
            self._set_state("starting")

    def _run_once(self, source: str) -> int:
        try:
            process = subprocess.Popen(
                list(self.launch.argv),
                env=dict(self.launch.env),
                cwd=self.launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                **self.launch.user.popen_kwargs(),  # type: ignore[arg-type]
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the command or env
            self.write_log(f"moorage[{self.name}]", f"Cannot start: {exc}")
            self.tail.append(f"cannot start: {exc}")
            return 127
        self._process = process
        self.pid = process.pid
        if self._stop.is_set():  # stop() ran while we were spawning
            _signal_group(process.pid, signal.SIGKILL)
        self.started_at = dt.datetime.now(dt.UTC)
        reader = threading.Thread(target=self._read, args=(process, source), daemon=True)
        reader.start()
        if self.is_web:
            self._await_health(process)
        elif not self._stop.is_set():
            self.healthy = True
            self._set_state("up")
        code = process.wait()
        reader.join(timeout=5)
        return code

    def _await_health(self, process: subprocess.Popen[bytes]) -> None:
        assert self.port is not None
        interval = 0.02
        while process.poll() is None and not self._stop.is_set():
            if probe(self.port):
                if process.poll() is None and not self._stop.is_set():
                    self.healthy = True
                    self._set_state("up")
                return
            time.sleep(interval)
            interval = min(interval * 1.5, 1.0)

    def _read(self, process: subprocess.Popen[bytes], source: str) -> None:
        assert process.stdout is not None
        with process.stdout:
            for raw in process.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self.tail.append(line)
                self.write_log(source, line)

    def _set_state(self, state: str) -> None:
        if state in ("up", "crashed"):
            # Routes first: when ps says "up", the router already sends it traffic.
            self.on_change(self)
        with self._cond:
            self.state = state
            self._cond.notify_all()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Wait until no live process is left in the group (zombies waiting for init count as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_members(pgid):
        time.sleep(0.01)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members
