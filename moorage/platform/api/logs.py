"""App and platform logs: the last N lines, or a live follow stream (plain text)."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, request

from moorage.platform.api.auth import platform, user
from moorage.platform.controller import processes

bp = Blueprint("logs", __name__, url_prefix="/v2/apps/<app>")


@bp.get("/logs")
def logs(app: str) -> Response:
    lines = processes.parse_lines(request.args.get("lines", request.args.get("log_lines", "100")))
    follow = request.args.get("follow", "").lower() in ("1", "true", "yes")
    source = processes.logs(platform(), user(), app, lines, follow)

    def generate() -> Iterator[str]:
        try:
            for line in source:
                yield processes.format_line(line) + "\n"
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    return Response(generate(), mimetype="text/plain")
