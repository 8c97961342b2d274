"""One JSON error shape for the controller API: ``{"code", "message", "details"}``.

Why one place: views raise ``moorage.errors`` and never build error responses; this
module maps each class to its HTTP status once, turns werkzeug's HTTP errors (404 for
unknown routes, 405, 413) into the same shape, and hides unexpected exceptions behind a
500 whose details stay in the log.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from moorage import errors

log = logging.getLogger(__name__)

#: Most specific first.
STATUS: list[tuple[type[errors.Error], int]] = [
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.ConcurrencyError, 409),
    (errors.InvalidParametersError, 400),
    (errors.UnprocessableError, 422),
    (errors.TemporaryError, 503),
    (errors.ProviderError, 502),
]


def status_of(exc: errors.Error) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def body(code: str, message: str, details: dict | None = None) -> dict:
    return {"code": code, "message": message, "details": details or {}}


def error_body(exc: errors.Error) -> dict:
    """The API's JSON body for one of our errors (plain responses and streamed jobs alike)."""
    return body(exc.code, exc.message, exc.details)


def internal_body() -> dict:
    """The body for anything else; what went wrong stays in the controller's log."""
    return body("internal", "internal error in the controller; see its log")


def init_app(app: Flask) -> None:
    @app.errorhandler(errors.Error)
    def _moorage_error(exc: errors.Error):  # type: ignore[no-untyped-def]
        status = status_of(exc)
        if status == 500:
            log.error("controller error: %s", exc.message)
        response = jsonify(error_body(exc))
        if status == 401:
            response.headers["WWW-Authenticate"] = "Token"
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        status = exc.code or 500
        messages = {
            404: "no such API route; docs/api.md lists them all",
            405: "this route does not accept that method",
            413: f"the request body is larger than {app.config['MAX_CONTENT_LENGTH'] // (1024 * 1024)} MB",
        }
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(body(code, messages.get(status, exc.description or exc.name))), status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unexpected error in the controller")
        return jsonify(internal_body()), 500
