"""The one error tree of Moorage.

Why a single root: each edge (the OSB API, the controller API, the CLI) maps errors to
its own shape exactly once, by class. Foreign exceptions (psycopg, redis, botocore, …)
are translated where they are raised, in ``moorage.clients`` or the provider that talks
to the server, so nothing past that boundary needs to know them.

    Error
    ├── ConfigurationError        bad settings or catalog files; start-up stops
    ├── NotFoundError             an id or name that does not exist
    ├── ConflictError             the same id with other attributes; "nothing changed"
    ├── InvalidParametersError    user input that fails validation
    ├── ConcurrencyError          another mutating operation is in progress
    ├── UnprocessableError        understood, but cannot be done (e.g. unsupported plan change)
    ├── PermissionDeniedError     authenticated, but not allowed
    │   └── AuthenticationError   not authenticated: no token, a bad token or password
    ├── ProviderError             a backend refused or failed; the message says why
    │   └── PermanentError        do not retry
    └── TemporaryError            not done yet: call again after ``delay`` seconds
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Error(Exception):
    """Root of every error Moorage raises on purpose. ``str(e)`` is for users."""

    #: A short machine-readable code, used by the controller API's error body.
    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigurationError(Error):
    code = "configuration"


class NotFoundError(Error):
    code = "not_found"


class ConflictError(Error):
    code = "conflict"


class InvalidParametersError(Error):
    code = "invalid"


class ConcurrencyError(Error):
    code = "concurrency"


class UnprocessableError(Error):
    code = "unprocessable"


class PermissionDeniedError(Error):
    code = "forbidden"


class AuthenticationError(PermissionDeniedError):
    """No token, an unknown token, or a wrong password (HTTP 401)."""

    code = "unauthorized"


class ProviderError(Error):
    """A backend failed. Retried with backoff by the operation engine, then reported."""

    code = "provider"


class PermanentError(ProviderError):
    """A backend failure that retrying cannot fix (bad request, quota, policy)."""

    code = "provider_permanent"


class TemporaryError(Error):
    """Not finished yet; the engine calls the provider again after ``delay`` seconds.

    ``outputs`` are saved before the next call, so a multi-step provider can record how
    far it got (for example the id of a cloud resource it has asked for). The next call
    sees them merged into the context's ``outputs``.
    """

    code = "temporary"

    def __init__(self, delay: float, message: str, outputs: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.delay = delay
        self.outputs = dict(outputs or {})
