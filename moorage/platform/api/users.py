"""Accounts: register, log in, who am I, regenerate and revoke tokens."""

from __future__ import annotations

from flask import Blueprint, jsonify

from moorage.platform.api.auth import bearer, optional_user, platform, user
from moorage.platform.api.bodies import json_object
from moorage.platform.controller import accounts

bp = Blueprint("users", __name__, url_prefix="/v2/auth")


@bp.post("/register")
def register():  # type: ignore[no-untyped-def]
    data = json_object()
    who = accounts.register(
        platform(), data.get("username"), data.get("password"), data.get("email", ""), by=optional_user()
    )
    return jsonify({"username": who.username, "is_admin": who.is_admin}), 201


@bp.post("/login")
def login():  # type: ignore[no-untyped-def]
    data = json_object()
    who, token = accounts.login(platform(), data.get("username"), data.get("password"))
    return jsonify({"username": who.username, "token": token})


@bp.get("/whoami")
def whoami():  # type: ignore[no-untyped-def]
    who = user()
    return jsonify({"username": who.username, "is_admin": who.is_admin})


@bp.post("/tokens")
def regenerate():  # type: ignore[no-untyped-def]
    data = json_object(optional=True)
    token = accounts.regenerate(platform(), user(), data.get("username"))
    return jsonify({"token": token})


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    accounts.logout(platform(), bearer() or "")
    return "", 204
