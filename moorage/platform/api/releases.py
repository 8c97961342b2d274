"""The release ledger: list, one release, rollback."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import Collector, json_object
from moorage.platform.controller import releases

bp = Blueprint("releases", __name__, url_prefix="/v2/apps/<app>/releases")


@bp.get("")
def list_releases(app: str):  # type: ignore[no-untyped-def]
    return jsonify({"results": releases.list_releases(platform(), user(), app)})


@bp.get("/<version>")
def info(app: str, version: str):  # type: ignore[no-untyped-def]
    return jsonify(releases.get_release(platform(), user(), app, version))


@bp.post("/rollback")
def rollback(app: str):  # type: ignore[no-untyped-def]
    data = json_object(optional=True)
    output = Collector()
    release = releases.rollback(platform(), user(), app, data.get("version"), output)
    return jsonify({"release": release, "output": output.lines}), 201
