"""The release ledger: list, one release, rollback."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import Collector, json_object
from moorage.platform.controller import releases, service_vars

bp = Blueprint("releases", __name__, url_prefix="/v2/apps/<app>/releases")


@bp.get("")
def list_releases(app: str):  # type: ignore[no-untyped-def]
    return jsonify({"results": releases.list_releases(platform(), user(), app)})


@bp.get("/<version>")
def info(app: str, version: str):  # type: ignore[no-untyped-def]
    release = releases.get_release(platform(), user(), app, version)
    reveal = request.args.get("reveal", "").lower() in ("1", "true", "yes")
    if isinstance(release.get("config"), dict) and not reveal:
        # Values of services bound now are masked, as in `config` (credentials of past
        # bindings were revoked at the broker when they were unbound).
        release["config"] = service_vars.masked(platform(), user(), app, release["config"])
    return jsonify(release)


@bp.post("/rollback")
def rollback(app: str):  # type: ignore[no-untyped-def]
    data = json_object(optional=True)
    output = Collector()
    release = releases.rollback(platform(), user(), app, data.get("version"), output)
    return jsonify({"release": release, "output": output.lines}), 201
