"""Child processes of a build: run as the build user, limited, streamed, with a deadline.

Why its own module: every buildpack step (detect, compile, release, fetching a custom
buildpack) is an untrusted program. They all need the same treatment, and getting it
right once matters more than getting it short:

* when Moorage runs as root, the child runs as an unprivileged user (``setuid`` in the
  child, never a shell ``su``), with no supplementary groups: the app's own uid
  (:meth:`BuildUser.for_app`), so one app's build cannot read or change another's;
* resource limits (open files, processes, file size, core dumps, private memory);
* a new session, so the whole process group can be killed at the deadline, including
  grandchildren such as ``pip`` or ``npm`` that the step started;
* output is merged (stdout + stderr) and handed to ``progress`` one line at a time as it
  arrives, not when the step ends.
"""

from __future__ import annotations

import os
import pwd
import resource
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from moorage.errors import ConfigurationError, UnprocessableError

Progress = Callable[[str], None]


class BuildFailed(UnprocessableError):
    """A build did not produce a slug; the message says why and what to do."""

    code = "build_failed"


class BuildTimeout(BuildFailed):
    code = "build_timeout"


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every build step (per process; processes per user)."""

    memory_mb: int = 4096
    open_files: int = 4096
    max_procs: int = 1024
    file_size_mb: int = 4096


@dataclass(frozen=True)
class BuildUser:
    """Who build steps run as. ``uid is None`` means "as ourselves" (not root)."""

    name: str
    uid: int | None
    gid: int | None
    home: str = "/nonexistent"

    @classmethod
    def resolve(cls, name: str) -> BuildUser:
        """The user to drop to when we are root; ourselves otherwise."""
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            return cls(me.pw_name, None, None, me.pw_dir)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ConfigurationError(
                f"build user {name!r} does not exist; create it (useradd --system {name}) "
                "or set MOORAGE_PLATFORM_RUN_AS_USER to an existing unprivileged user"
            ) from None
        if entry.pw_uid == 0:
            raise ConfigurationError(f"build user {name!r} is root; builds must run as an unprivileged user")
        return cls(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    @classmethod
    def for_app(cls, app: str, uid: int) -> BuildUser:
        """The app's own identity (uid = gid, no home), as its processes get from the runtime."""
        return cls(f"app-{app}", uid, uid, "/nonexistent")

    def give(self, path: Path) -> None:
        """Make ``path`` (not recursive) owned by this user."""
        if self.uid is not None:
            os.chown(path, self.uid, self.gid if self.gid is not None else -1)

    def give_tree(self, path: Path) -> None:
        """Make a whole tree owned by this user (skips entries already owned)."""
        if self.uid is None:
            return
        gid = self.gid if self.gid is not None else -1
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files, ""]:
                p = os.path.join(root, name) if name else root
                st = os.lstat(p)
                if st.st_uid != self.uid:
                    os.lchown(p, self.uid, gid)


def _limiter(limits: Limits) -> Callable[[], None]:
    mb = 1024 * 1024

    def apply() -> None:  # runs in the child, after setuid
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_procs, limits.max_procs))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb * mb, limits.file_size_mb * mb))
        # Private writable memory, not address space: V8 (npm, node-gyp, fetch's WebAssembly)
        # reserves far more address space than it uses.
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_mb * mb, limits.memory_mb * mb))

    return apply


@dataclass(frozen=True)
class StepResult:
    exit_code: int
    #: stdout only when it was captured separately (``capture_stdout``), else merged output.
    output: str


def run_step(
    argv: Sequence[str],
    *,
    user: BuildUser,
    env: Mapping[str, str],
    cwd: Path,
    limits: Limits,
    deadline: float,
    progress: Progress | None = None,
    capture_stdout: bool = False,
    what: str = "build step",
) -> StepResult:
    """Run one step; stream its lines to ``progress``; kill its process group at ``deadline``.

    With ``capture_stdout`` stdout is returned (for ``bin/detect``/``bin/release``) and
    only stderr is streamed. Raises :class:`BuildTimeout` when ``deadline``
    (a ``time.monotonic()`` value) passes first.
    """
    kwargs: dict = {}
    if user.uid is not None:
        kwargs.update(user=user.uid, group=user.gid, extra_groups=[])
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture_stdout else subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_limiter(limits),
            **kwargs,
        )
    except OSError as e:
        raise BuildFailed(f"could not start the {what} ({argv[0]}): {e.strerror}") from None
    output = _Output(proc, capture_stdout, progress)
    try:
        timed_out = output.pump(deadline)
        if not timed_out:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        _kill_group(proc)
        output.close()
    output.flush()
    if timed_out:
        raise BuildTimeout(
            f"the {what} did not finish before the build timeout; its processes were stopped. "
            "Make the build faster or raise MOORAGE_PLATFORM_BUILD_TIMEOUT_SECONDS"
        )
    return StepResult(proc.returncode, output.stdout())


class _Output:
    """A step's pipes: lines streamed to ``progress`` as they come, stdout kept when captured.

    One selector over both pipes, so a step that fills one pipe while Moorage waits on the
    other cannot deadlock, and the deadline is checked between reads.
    """

    def __init__(self, proc: subprocess.Popen, capture_stdout: bool, progress: Progress | None) -> None:
        self.proc = proc
        self.capture_stdout = capture_stdout
        self.progress = progress
        self.captured: list[bytes] = []
        self.partial = {"out": b"", "err": b""}
        self.sel = selectors.DefaultSelector()
        assert proc.stdout is not None
        self.sel.register(proc.stdout, selectors.EVENT_READ, "out")
        if capture_stdout:
            assert proc.stderr is not None
            self.sel.register(proc.stderr, selectors.EVENT_READ, "err")

    def pump(self, deadline: float) -> bool:
        """Read until every pipe closes (True when ``deadline`` passed first)."""
        while self.sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            # After the main process exits, stragglers holding the pipe get a short grace.
            timeout = min(remaining, 0.5) if self.proc.poll() is not None else min(remaining, 5.0)
            events = self.sel.select(timeout)
            if not events and self.proc.poll() is not None:
                return False
            for key, _ in events:
                data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                if not data:
                    self.sel.unregister(key.fileobj)
                elif key.data == "out" and self.capture_stdout:
                    self.captured.append(data)
                else:
                    self.partial[key.data] = self._emit(self.partial[key.data] + data)
        return False

    def flush(self) -> None:
        """Emit what is left after the last newline."""
        for name in ("out", "err"):
            if self.partial[name]:
                self._emit(self.partial[name], final=True)

    def close(self) -> None:
        self.sel.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def stdout(self) -> str:
        return b"".join(self.captured).decode("utf-8", "replace")

    def _emit(self, chunk: bytes, final: bool = False) -> bytes:
        *lines, rest = chunk.split(b"\n")
        if final and rest:
            lines, rest = [*lines, rest], b""
        for raw in lines:
            if self.progress is not None:
                self.progress(raw.decode("utf-8", "replace").rstrip("\r"))
        return rest


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the step's whole process group (it is its own session leader)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process in D state
        pass
