"""Config vars: get, and set/unset (merge; ``null`` unsets), each change a new release.

Values a bound service provides are masked unless ``?reveal=1``; changing them needs
``"force": true`` (see controller.service_vars).
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import Collector, json_object
from moorage.platform.controller import config_vars, service_vars

bp = Blueprint("config", __name__, url_prefix="/v2/apps/<app>/config")


@bp.get("")
def get(app: str):  # type: ignore[no-untyped-def]
    values = config_vars.get_config(platform(), user(), app)
    reveal = request.args.get("reveal", "").lower() in ("1", "true", "yes")
    return jsonify({"values": values if reveal else service_vars.masked(platform(), user(), app, values)})


@bp.post("")
def change(app: str):  # type: ignore[no-untyped-def]
    data = json_object()
    output = Collector()
    result = config_vars.change_config(
        platform(), user(), app, data.get("values"), output, force=data.get("force") is True
    )
    values = service_vars.masked(platform(), user(), app, result["values"])
    return jsonify({**result, "values": values, "output": output.lines}), 201
