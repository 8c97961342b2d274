"""The supervisor's wire format: one JSON object per line over its unix socket.

Why JSON lines: the controller and the supervisor are separate processes of possibly
different Moorage versions (the controller is upgraded while the supervisor keeps the
apps running), so what crosses is plain data: a request line ``{"op", "args"}``, then
any number of ``{"progress": …}`` or ``{"line": …}`` lines, then one ``{"ok": …}`` or
``{"error": {"type", "message", "details"}}``. These helpers turn the runtime's
dataclasses and errors into that data and back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import moorage.errors as errors
from moorage.platform.runtime.base import LogLine, ProcessStatus, ReleaseSpec

#: Longest request or answer line (a release's env and binding files fit well inside).
MAX_LINE = 16 * 1024 * 1024


def dump(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=str).encode() + b"\n"


def load(raw: bytes) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("a message must be a JSON object")
    return value


def release_to(spec: ReleaseSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def release_from(data: dict[str, Any]) -> ReleaseSpec:
    names = {f.name for f in dataclasses.fields(ReleaseSpec)}
    return ReleaseSpec(**{k: v for k, v in data.items() if k in names})


def status_to(status: ProcessStatus) -> dict[str, Any]:
    data = dataclasses.asdict(status)
    data["started_at"] = status.started_at.isoformat() if status.started_at else None
    return data


def status_from(data: dict[str, Any]) -> ProcessStatus:
    started = data.get("started_at")
    return ProcessStatus(
        type=data["type"],
        number=data["number"],
        state=data["state"],
        release=data["release"],
        started_at=dt.datetime.fromisoformat(started) if started else None,
        restarts=data.get("restarts", 0),
        port=data.get("port"),
        pid=data.get("pid"),
    )


def line_to(line: LogLine) -> dict[str, Any]:
    return {"timestamp": line.timestamp.isoformat(), "source": line.source, "line": line.line}


def line_from(data: dict[str, Any]) -> LogLine:
    return LogLine(dt.datetime.fromisoformat(data["timestamp"]), data["source"], data["line"])


def error_to(exc: errors.Error) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": exc.message, "details": exc.details}


def error_from(data: dict[str, Any]) -> errors.Error:
    """The same error class the supervisor raised (``Error`` for a name this version lacks)."""
    cls = getattr(errors, str(data.get("type")), errors.Error)
    if not (isinstance(cls, type) and issubclass(cls, errors.Error)):
        cls = errors.Error
    details = data.get("details") or {}
    try:
        return cls(str(data.get("message", "")), **details)  # type: ignore[no-any-return]
    except TypeError:  # TemporaryError and friends take other arguments
        return errors.Error(str(data.get("message", "")), **details)
