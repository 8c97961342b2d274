"""One-off commands in the app's current release environment."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import json_object
from moorage.platform.controller import processes

bp = Blueprint("run", __name__, url_prefix="/v2/apps/<app>")


@bp.post("/run")
def run(app: str):  # type: ignore[no-untyped-def]
    return jsonify(processes.run(platform(), user(), app, json_object().get("command")))
