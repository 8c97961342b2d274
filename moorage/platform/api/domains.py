"""Custom domains of an app."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import json_object
from moorage.platform.controller import domains

bp = Blueprint("domains", __name__, url_prefix="/v2/apps/<app>/domains")


@bp.get("")
def list_domains(app: str):  # type: ignore[no-untyped-def]
    return jsonify({"results": domains.list_domains(platform(), user(), app)})


@bp.post("")
def add(app: str):  # type: ignore[no-untyped-def]
    domain = domains.add(platform(), user(), app, json_object().get("domain"))
    return jsonify({"domain": domain}), 201


@bp.delete("/<domain>")
def remove(app: str, domain: str):  # type: ignore[no-untyped-def]
    domains.remove(platform(), user(), app, domain)
    return "", 204
