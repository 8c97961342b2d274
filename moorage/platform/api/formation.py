"""Formation: scale, ps (pods), restart."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import Collector, json_object
from moorage.platform.controller import processes

bp = Blueprint("formation", __name__, url_prefix="/v2/apps/<app>")


@bp.post("/scale")
def scale(app: str):  # type: ignore[no-untyped-def]
    output = Collector()
    structure = processes.scale(platform(), user(), app, json_object(), output)
    return jsonify({"structure": structure, "output": output.lines})


@bp.get("/pods")
def pods(app: str):  # type: ignore[no-untyped-def]
    return jsonify({"results": processes.ps(platform(), user(), app)})


@bp.post("/pods/restart")
@bp.post("/pods/<ptype>/restart")
def restart(app: str, ptype: str | None = None):  # type: ignore[no-untyped-def]
    output = Collector()
    processes.restart(platform(), user(), app, ptype, output)
    return jsonify({"results": processes.ps(platform(), user(), app), "output": output.lines})
