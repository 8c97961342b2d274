"""Custom domain certificates of an app (SNI) and its HTTP -> HTTPS redirect setting."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import json_object
from moorage.platform.controller import certs

bp = Blueprint("certs", __name__, url_prefix="/v2/apps/<app>")


@bp.get("/certs")
def list_certs(app: str):  # type: ignore[no-untyped-def]
    return jsonify(certs.list_certs(platform(), user(), app))


@bp.post("/certs")
def add(app: str):  # type: ignore[no-untyped-def]
    body = json_object()
    return jsonify(certs.add(platform(), user(), app, body.get("certificate"), body.get("key"))), 201


@bp.delete("/certs/<domain>")
def remove(app: str, domain: str):  # type: ignore[no-untyped-def]
    return jsonify({"removed": certs.remove(platform(), user(), app, domain)})


@bp.put("/tls")
def set_tls(app: str):  # type: ignore[no-untyped-def]
    force = certs.set_force_https(platform(), user(), app, json_object().get("force_https"))
    return jsonify({"force_https": force})
