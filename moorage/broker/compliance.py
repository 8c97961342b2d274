"""The spec-compliance layer around openbrokerapi's blueprint.

Why it exists: openbrokerapi 4.7.3 gets the happy paths right but falls short of OSB
2.17 in places listed in ``shared/osb/RULES.md`` §7 — version check before auth, 500
for a non-numeric version, no ``service_id`` check, empty guids accepted, no
``maintenance_info``, no request-identity echo, no ``Retry-After``, no ``endpoints``,
404/410 mix-ups on ``last_operation``. App-level hooks here run before the blueprint's
and answer those cases themselves; broker methods raise :class:`OsbError`, whose
handler is registered on the blueprint so it wins over openbrokerapi's catch-all.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Flask, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from moorage.broker.osb_request import (
    BindRequest,
    DeleteRequest,
    OsbRequest,
    ProvisionRequest,
    UpdateRequest,
    bind_request,
    provision_request,
    update_request,
)
from moorage.catalog.model import Catalog, Offering, Plan

log = logging.getLogger(__name__)

VERSION = re.compile(r"^(\d+)\.(\d+)$")
MIN_VERSION = (2, 13)
#: Path segments we accept as ids: RFC 3986 unreserved characters.
ID = re.compile(r"^[A-Za-z0-9._~-]{1,255}$")
JSON_METHODS = {"PUT", "PATCH"}
#: Nesting levels of objects/arrays a request body may have (the body object is level 1).
#: Deeper documents are no real parameters, and past ~1,000 levels json.loads fails.
MAX_DEPTH = 64

R = TypeVar("R", ProvisionRequest, UpdateRequest, BindRequest, DeleteRequest)


class OsbError(Exception):
    """An OSB error answer: status, optional ``error`` code, and a ``description``."""

    def __init__(self, status: int, description: str, error: str | None = None, **extra: Any) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.error:
            body["error"] = self.error
        if self.description:
            body["description"] = self.description
        body.update(self.extra)
        return body


def bad_request(description: str) -> OsbError:
    return OsbError(HTTPStatus.BAD_REQUEST, description)


def concurrency_error() -> OsbError:
    return OsbError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "another operation on this resource is in progress; retry when it has finished",
        "ConcurrencyError",
    )


def async_required() -> OsbError:
    return OsbError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "this plan works asynchronously; send the request again with accepts_incomplete=true",
        "AsyncRequired",
    )


def json_error(status: int, description: str, error: str | None = None) -> Response:
    return osb_response(OsbError(status, description, error))


def osb_response(exc: OsbError) -> Response:
    return Response(json.dumps(exc.body()), status=exc.status, mimetype="application/json")


def install(app: Flask, catalog: Catalog, username: str, password: str, max_body: int) -> None:
    """Register the request checks that must run before openbrokerapi sees a request.

    Three parts: JSON answers for what never reaches a route (too large, no route, wrong
    method); the checks before the blueprint, which also parse the request the broker
    methods are handed (:mod:`osb_request`); and the headers and body fields added to
    the answer afterwards.
    """
    app.config["MAX_CONTENT_LENGTH"] = max_body
    _install_error_pages(app, max_body)
    expected = (username.encode(), password.encode())

    @app.before_request
    def _check() -> Response | None:
        g.request_identity = request.headers.get("X-Broker-API-Request-Identity")
        if request.path in ("/healthz", "/readiness"):
            return None
        if not _authenticated(*expected):
            resp = json_error(
                HTTPStatus.UNAUTHORIZED,
                "authentication required: HTTP basic auth with the broker credentials",
            )
            resp.headers["WWW-Authenticate"] = 'Basic realm="moorage broker"'
            return resp
        try:
            _check_version()
            _check_ids()
            g.osb_request = _parsed_request(catalog, g.request_identity)
        except OsbError as exc:
            return osb_response(exc)
        return None

    app.after_request(_decorate)


def _install_error_pages(app: Flask, max_body: int) -> None:
    """OSB answers every error with a JSON body; Flask's defaults are HTML pages."""

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: Exception) -> Response:
        return json_error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"request body is larger than {max_body} bytes; send less data",
        )

    @app.errorhandler(HTTPStatus.NOT_FOUND)
    def _no_route(_exc: Exception) -> Response:
        return json_error(HTTPStatus.NOT_FOUND, f"no OSB endpoint at {request.method} {request.path}")

    @app.errorhandler(HTTPStatus.METHOD_NOT_ALLOWED)
    def _bad_method(_exc: Exception) -> Response:
        return json_error(
            HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not supported on {request.path}"
        )


def _authenticated(expected_user: bytes, expected_password: bytes) -> bool:
    """HTTP basic auth with the broker's credentials, compared in constant time."""
    auth = request.authorization
    user_ok = hmac.compare_digest((auth.username or "").encode() if auth else b"", expected_user)
    pass_ok = hmac.compare_digest((auth.password or "").encode() if auth else b"", expected_password)
    return bool(auth and auth.type == "basic" and user_ok and pass_ok)


def _decorate(response: Response) -> Response:
    """What openbrokerapi's response classes cannot carry: the echoed request identity,
    ``Retry-After``, and body fields (``endpoints``, ``maintenance_info``, ...) the broker
    methods left in ``flask.g``."""
    identity = g.get("request_identity")
    if identity:
        response.headers["X-Broker-API-Request-Identity"] = identity
    retry_after = g.get("retry_after")
    if retry_after is not None and response.status_code in (200, 202):
        response.headers["Retry-After"] = str(retry_after)
    extra = g.get("extra_json")
    if extra and response.status_code < 300 and response.mimetype == "application/json":
        body = json.loads(response.get_data() or b"{}")
        body.update(extra)
        response.set_data(json.dumps(body))
    return response


def _parsed_request(catalog: Catalog, identity: str | None) -> OsbRequest | None:
    """The checked request a broker method acts on; ``None`` for reads, which carry none."""
    if request.method in JSON_METHODS:
        return _check_body(catalog, identity)
    if request.method == "DELETE":
        return _check_delete_query(catalog, identity)
    return None


def current_request(kind: type[R]) -> R:
    """The request :func:`install`'s check parsed for this call, as the ``kind`` the route
    implies (a PUT of a binding is a :class:`BindRequest`, ...)."""
    parsed = g.get("osb_request")
    if not isinstance(parsed, kind):
        raise TypeError(f"this request was parsed as {type(parsed).__name__}, not {kind.__name__}")
    return parsed


def _check_version() -> None:
    version = request.headers.get("X-Broker-API-Version")
    if not version:
        raise bad_request("missing X-Broker-API-Version header; send X-Broker-API-Version: 2.17")
    match = VERSION.match(version.strip())
    if not match:
        raise bad_request(f"X-Broker-API-Version {version!r} is not MAJOR.MINOR; send 2.17")
    if (int(match[1]), int(match[2])) < MIN_VERSION or int(match[1]) != 2:
        raise OsbError(
            HTTPStatus.PRECONDITION_FAILED,
            f"broker API version {version} is not supported; this broker speaks 2.13 to 2.17",
        )


def _check_ids() -> None:
    args = request.view_args or {}
    for name in ("instance_id", "binding_id"):
        value = args.get(name)
        if value is not None and not ID.match(value):
            raise bad_request(
                f"{name} must be 1-255 unreserved characters (letters, digits, '.', '_', '~', '-')"
            )


def parse_body(raw: bytes) -> Any:
    """Strict JSON: no NaN/Infinity (not JSON, and they would be stored and later sent
    back as invalid JSON) and at most :data:`MAX_DEPTH` levels of nesting."""
    try:
        body = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:  # far deeper than MAX_DEPTH: the C parser gave up first
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if _depth_exceeds(body, MAX_DEPTH):
        raise _too_deep()
    return body


def _refuse_constant(name: str) -> Any:
    raise bad_request(f"request body contains {name}: NaN/Infinity are not JSON; send a number")


def _finite_float(text: str) -> float:
    """``1e400`` parses to infinity, which would be stored and sent back as ``Infinity``."""
    value = float(text)
    if not math.isfinite(value):
        raise bad_request(
            f"request body contains {text}, which is too large for a number; send a smaller one"
        )
    return value


def _too_deep() -> OsbError:
    return bad_request(
        f"the request body is nested too deeply (at most {MAX_DEPTH} levels); send a flatter JSON document"
    )


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether objects/arrays nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _check_body(catalog: Catalog, identity: str | None) -> ProvisionRequest | UpdateRequest | BindRequest:
    if not request.is_json:
        raise bad_request("Content-Type must be application/json")
    body = parse_body(request.get_data(cache=True) or b"")
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    args = request.view_args or {}
    is_update = request.method == "PATCH"
    service_id = _required_string(body, "service_id")
    plan_id = None if body.get("plan_id") is None and is_update else _required_string(body, "plan_id")
    catalog_entry(catalog, service_id, plan_id)
    if request.method == "PUT" and "binding_id" not in args:
        for name in ("organization_guid", "space_guid"):
            _required_string(body, name)
    for name in ("parameters", "context", "bind_resource", "maintenance_info", "previous_values"):
        if name in body and body[name] is not None and not isinstance(body[name], dict):
            raise bad_request(f"{name} must be a JSON object")
    if (
        "context" in body
        and body["context"] is not None
        and not isinstance(body["context"].get("platform", ""), str)
    ):
        raise bad_request("context.platform must be a string")
    info = body.get("maintenance_info")
    if info is not None and not isinstance(info.get("version"), str):
        raise bad_request("maintenance_info.version must be a string")
    if is_update:
        return update_request(body, identity)
    if "binding_id" in args:
        return bind_request(body, identity)
    return provision_request(body, identity)


def _check_delete_query(catalog: Catalog, identity: str | None) -> DeleteRequest:
    service_id = request.args.get("service_id")
    plan_id = request.args.get("plan_id")
    if not service_id or not plan_id:
        raise bad_request("the service_id and plan_id query parameters are required")
    catalog_entry(catalog, service_id, plan_id)
    return DeleteRequest(service_id, plan_id, identity)


def catalog_entry(catalog: Catalog, service_id: str, plan_id: str | None) -> tuple[Offering, Plan | None]:
    """The offering and plan (None without ``plan_id``) the ids name; 400 for an id not in the catalog.

    The one check of catalog ids: requests are checked on the way in, and the instance
    code looks its rows' ids up through it too (a plan may have left the catalog since).
    """
    offering = catalog.offering(service_id)
    if offering is None:
        raise bad_request(f"service_id {service_id!r} is not in this broker's catalog")
    if plan_id is None:
        return offering, None
    plan = offering.plan(plan_id)
    if plan is None:
        raise bad_request(f"plan_id {plan_id!r} is not a plan of service {offering.name!r}")
    return offering, plan


def _required_string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise bad_request(f"{name} is required")
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{name} must be a non-empty string")
    return value
