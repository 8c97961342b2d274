"""Sharing an app with other users (collaborators)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import json_object
from moorage.platform.controller import apps

bp = Blueprint("perms", __name__, url_prefix="/v2/apps/<app>/perms")


@bp.get("")
def list_perms(app: str):  # type: ignore[no-untyped-def]
    return jsonify({"users": apps.list_perms(platform(), user(), app)})


@bp.post("")
def add(app: str):  # type: ignore[no-untyped-def]
    apps.add_perm(platform(), user(), app, json_object().get("username"))
    return "", 201


@bp.delete("/<username>")
def remove(app: str, username: str):  # type: ignore[no-untyped-def]
    apps.remove_perm(platform(), user(), app, username)
    return "", 204
