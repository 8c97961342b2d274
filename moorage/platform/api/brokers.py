"""Service brokers (admins only): register, list, remove, refresh the cached catalog."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import platform, user
from moorage.platform.api.bodies import json_object
from moorage.platform.controller import brokers

bp = Blueprint("brokers", __name__, url_prefix="/v2/brokers")


@bp.get("")
def list_brokers():  # type: ignore[no-untyped-def]
    return jsonify({"results": brokers.list_brokers(platform(), user())})


@bp.post("")
def add():  # type: ignore[no-untyped-def]
    data = json_object()
    result = brokers.add(
        platform(), user(), data.get("name"), data.get("url"), data.get("username"), data.get("password")
    )
    return jsonify(result), 201


@bp.delete("/<name>")
def remove(name: str):  # type: ignore[no-untyped-def]
    brokers.remove(platform(), user(), name)
    return "", 204


@bp.post("/<name>/refresh")
def refresh(name: str):  # type: ignore[no-untyped-def]
    return jsonify(brokers.refresh(platform(), user(), name))
