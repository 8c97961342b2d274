"""Config vars: get, and set/unset (merge; ``null`` unsets), each change a new release."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import Collector, json_object
from moorage.platform.controller import releases

bp = Blueprint("config", __name__, url_prefix="/v2/apps/<app>/config")


@bp.get("")
def get(app: str):  # type: ignore[no-untyped-def]
    return jsonify({"values": releases.get_config(platform(), user(), app)})


@bp.post("")
def change(app: str):  # type: ignore[no-untyped-def]
    data = json_object()
    output = Collector()
    result = releases.change_config(platform(), user(), app, data.get("values"), output)
    return jsonify({**result, "output": output.lines}), 201
