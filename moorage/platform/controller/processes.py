"""What runs: the formation (scale), process status (ps), restarts, logs and one-off runs.

Why no release here: scaling changes how many processes run, not what they run, so it is
recorded in the app's formation and handed to the runtime without touching the ledger
(as in Deis). Every call resolves the app through the access check first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from moorage.errors import InvalidParametersError, UnprocessableError
from moorage.platform.controller import releases
from moorage.platform.controller.apps import find
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.runtime.base import LogLine, Progress, ReleaseSpec

MAX_COUNT = 100
MAX_LOG_LINES = 10_000


def _live_spec(platform: Platform, who: Principal, name: str) -> tuple[ReleaseSpec, dict[str, int]]:
    with platform.db.unit_of_work() as s:
        app = find(s, who, name)
        spec = releases.spec_of(platform, s, app, releases.current(s, app))
        formation = releases.formation_of(s, app)
    if spec is None:
        raise UnprocessableError(f"{name} has not been deployed yet; run `moorage deploy` first")
    return spec, formation


def scale(platform: Platform, who: Principal, name: str, counts: Any, progress: Progress) -> dict[str, int]:
    if not isinstance(counts, dict) or not counts:
        raise InvalidParametersError('give process counts: {"web": 2, "worker": 1}')
    with platform.app_lock(name, who, "scale"):
        spec, formation = _live_spec(platform, who, name)
        for ptype, count in counts.items():
            if ptype == releases.RELEASE_TASK:
                raise InvalidParametersError(
                    "the release task runs once per release, before deploys; it cannot be scaled "
                    "(use `moorage run` to run it again)"
                )
            if ptype not in spec.processes:
                known = ", ".join(sorted(spec.processes)) or "none"
                raise InvalidParametersError(
                    f"{name} has no process type {ptype!r}; its Procfile declares: {known}"
                )
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
                raise InvalidParametersError(
                    f"invalid count {count!r} for {ptype}: use a whole number from 0 to {MAX_COUNT}"
                )
        new = {**formation, **counts}
        platform.runtime.scale(name, new, progress)
        with platform.db.unit_of_work() as s:
            releases.save_formation(s, find(s, who, name), new)
    return new


def ps(platform: Platform, who: Principal, name: str) -> list[dict[str, Any]]:
    with platform.db.unit_of_work() as s:
        find(s, who, name)
    return [
        {
            "name": p.name,
            "type": p.type,
            "number": p.number,
            "state": p.state,
            "release": f"v{p.release}",
            "started": p.started_at.isoformat() if p.started_at else None,
            "restarts": p.restarts,
            "pid": p.pid,
        }
        for p in sorted(platform.runtime.status(name), key=lambda p: (p.type, p.number))
    ]


def restart(platform: Platform, who: Principal, name: str, ptype: str | None, progress: Progress) -> None:
    with platform.app_lock(name, who, "ps:restart"):
        spec, _ = _live_spec(platform, who, name)
        if ptype is not None and ptype not in spec.processes:
            raise InvalidParametersError(f"{name} has no process type {ptype!r}")
        platform.runtime.restart(name, ptype, progress)


def run(platform: Platform, who: Principal, name: str, command: Any) -> dict[str, Any]:
    if not isinstance(command, str) or not command.strip():
        raise InvalidParametersError('give the command to run: {"command": "python manage.py migrate"}')
    if "\x00" in command:
        raise InvalidParametersError("the command contains a NUL character; send it as plain text")
    spec, _ = _live_spec(platform, who, name)
    result = platform.runtime.run_once(
        spec, command, timeout=platform.settings.platform.build_timeout_seconds
    )
    return {"exit_code": result.exit_code, "output": result.output}


def parse_lines(raw: Any) -> int:
    try:
        lines = int(raw)
    except (TypeError, ValueError):
        raise InvalidParametersError(f"invalid line count {raw!r}: use a whole number") from None
    if not 1 <= lines <= MAX_LOG_LINES:
        raise InvalidParametersError(f"the line count must be between 1 and {MAX_LOG_LINES}")
    return lines


def logs(platform: Platform, who: Principal, name: str, lines: int, follow: bool) -> Iterator[LogLine]:
    with platform.db.unit_of_work() as s:
        find(s, who, name)
    return platform.runtime.logs(name, lines=lines, follow=follow)


def format_line(line: LogLine) -> str:
    return f"{line.timestamp.isoformat()} {line.source}: {line.line}"
