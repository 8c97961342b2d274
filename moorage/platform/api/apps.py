"""Apps: create, list, info, destroy."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import json_object
from moorage.platform.controller import apps, teardown

bp = Blueprint("apps", __name__, url_prefix="/v2/apps")


@bp.get("")
def list_apps():  # type: ignore[no-untyped-def]
    return jsonify({"results": apps.list_apps(platform(), user())})


@bp.post("")
def create():  # type: ignore[no-untyped-def]
    data = json_object(optional=True)
    return jsonify(apps.create(platform(), user(), data.get("id"))), 201


@bp.get("/<app>")
def info(app: str):  # type: ignore[no-untyped-def]
    return jsonify(apps.info(platform(), user(), app))


@bp.delete("/<app>")
def destroy(app: str):  # type: ignore[no-untyped-def]
    teardown.destroy_app(platform(), user(), app)
    return "", 204
