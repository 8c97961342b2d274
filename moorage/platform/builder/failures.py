"""What a failed ``bin/compile`` said, for the build's error message.

Why: a build that fails must name what failed, even when the buildpack says nothing. The
bash buildpacks shipped with Moorage source ``buildpacks/lib/failures.sh``, which prints one
``Build failed:`` line naming the command, its exit code and the script line; the error the
user gets ends with the buildpack's exit code and that line. A buildpack that exits non-zero
without such a line (a third-party one, a bare ``exit 1``) gets its last output lines quoted
instead, and is called out as having printed no reason.
"""

from __future__ import annotations

from collections import deque

from moorage.platform.builder.processes import Progress

#: What ``buildpacks/lib/failures.sh`` prints before its reason (``BP_FAILURE_PREFIX``).
FAILURE_MARK = "Build failed: "
TAIL_LINES = 8


class OutputTail:
    """A progress callback that passes lines on and keeps the last ones and the failure line."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)
        self.failure: str | None = None

    def __call__(self, line: str) -> None:
        self.progress(line)
        if line.strip():
            self.lines.append(line.strip())
        marked = line.lstrip(" !").startswith(FAILURE_MARK)
        if marked and self.failure is None:
            self.failure = line.lstrip(" !")[len(FAILURE_MARK) :].strip()


def compile_failed(buildpack: str, exit_code: int, tail: OutputTail) -> str:
    """The build's error message for a compile step that exited with ``exit_code``."""
    head = f"the {buildpack} buildpack failed to compile the app (exit code {exit_code})"
    if tail.failure:
        return f"{head}: {tail.failure}"
    if tail.lines:
        last = " | ".join(list(tail.lines)[-3:])
        return f"{head} and printed no reason; its last output lines: {last}"
    return f"{head} and printed nothing at all; run its bin/compile by hand to see why"
