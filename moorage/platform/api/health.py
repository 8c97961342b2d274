"""Liveness and readiness, without authentication (for load balancers and ``moorage up``)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from moorage.platform.api.auth import platform

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify({"status": "ok"})


@bp.get("/readiness")
def readiness():  # type: ignore[no-untyped-def]
    try:
        with platform().db.unit_of_work() as s:
            s.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return jsonify({"status": "unavailable", "message": "the state database does not answer"}), 503
    return jsonify({"status": "ready"})
