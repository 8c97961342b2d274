"""Procfiles: the one parser and the one rule for process type names.

Why one module: the builder, the controller and the runtime all read process types; if
their rules differ, a build can succeed with a type the deploy then refuses (leaving a
stored slug nobody uses). Process types are lower-case letters and digits, with ``-`` or
``_`` between them (``web``, ``worker``, ``release``, ``celery_beat``).
"""

from __future__ import annotations

import re

from moorage.errors import InvalidParametersError

PROCESS_TYPE_RE = re.compile(r"^[a-z0-9]+([_-][a-z0-9]+)*$")
RULE = "lower-case letters and digits, with - or _ between them"


class ProcfileError(InvalidParametersError):
    """A Procfile that cannot be used; the message names the line and the fix."""


def is_process_type(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 63 and PROCESS_TYPE_RE.match(name) is not None


def parse(text: str) -> dict[str, str]:
    """``type: command`` lines; blank lines and ``#`` comments are allowed."""
    processes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ptype, sep, command = line.partition(":")
        ptype, command = ptype.strip(), command.strip()
        if not sep or not command:
            raise ProcfileError(
                f"Procfile line {number} is not `type: command`: {raw.strip()!r}. "
                "Write one process per line, for example `web: gunicorn app:app`"
            )
        if not is_process_type(ptype):
            raise ProcfileError(f"Procfile line {number}: invalid process type {ptype!r} ({RULE})")
        if ptype in processes:
            raise ProcfileError(f"Procfile line {number}: the process type {ptype!r} appears twice")
        processes[ptype] = command
    return processes
