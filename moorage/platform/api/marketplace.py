"""The marketplace: offerings and plans of every registered broker, for any logged-in user."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from moorage.platform.api.auth import platform, user
from moorage.platform.controller import marketplace

bp = Blueprint("marketplace", __name__, url_prefix="/v2/marketplace")


@bp.get("")
def list_offerings():  # type: ignore[no-untyped-def]
    return jsonify(marketplace.list_offerings(platform(), user()))


@bp.get("/<service>")
def show(service: str):  # type: ignore[no-untyped-def]
    return jsonify(marketplace.show(platform(), user(), service, request.args.get("broker")))
