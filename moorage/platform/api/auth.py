"""Token authentication on every route but registration, login and health checks.

Why a ``before_request`` hook and an allow-list: a new blueprint is protected without
remembering a decorator; only the endpoints named here are public.
"""

from __future__ import annotations

from flask import Flask, current_app, g, request

from moorage.errors import AuthenticationError
from moorage.platform.controller import accounts
from moorage.platform.controller.context import Platform, Principal

PUBLIC = {"health.healthz", "health.readiness", "users.register", "users.login"}
#: git's smart HTTP routes check HTTP basic auth themselves (see api.git).
PUBLIC |= {"git.info_refs", "git.rpc"}
#: A release's slug for its pods: the URL's signature is checked instead (see api.slugs).
PUBLIC |= {"slugs.fetch"}


def platform() -> Platform:
    return current_app.extensions["moorage.platform"]


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and token.strip():
        return token.strip()
    return None


def user() -> Principal:
    return g.moorage_user


def optional_user() -> Principal | None:
    """For public routes that behave differently for a logged-in admin (registration)."""
    token = bearer()
    if token is None:
        return None
    try:
        return accounts.authenticate(platform(), token)
    except AuthenticationError:
        return None


def init_app(app: Flask) -> None:
    @app.before_request
    def _authenticate() -> None:
        if request.endpoint in PUBLIC or request.endpoint is None:
            return
        token = bearer()
        if token is None:
            raise AuthenticationError(
                "this route needs a token: log in with `moorage login` (header `Authorization: token <token>`)"
            )
        g.moorage_user = accounts.authenticate(platform(), token)
