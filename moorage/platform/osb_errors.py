"""What an OSB broker's answers mean to the platform: a failure, or a refusal.

Why the difference matters: after a refusal (a 4xx to the request itself) the broker
created or changed nothing, so the platform keeps nothing either; after a failure (a
5xx, a time-out, a failed operation) the broker may hold something, so the OSB client
runs orphan mitigation and the controller keeps the failed instance for the user.
"""

from __future__ import annotations

from moorage.errors import ConflictError, Error, InvalidParametersError, ProviderError, UnprocessableError


class BrokerError(ProviderError):
    """A broker answered with an error or could not be reached; the message says which."""

    def __init__(self, message: str, status: int | None = None, error: str | None = None) -> None:
        super().__init__(message, status=status, error=error)
        self.status = status
        self.error = error


class OrphanLeft(BrokerError):
    """A create or bind failed and deleting what the broker may hold failed too.

    The caller must keep its record (as being removed) instead of forgetting it: otherwise
    the broker would keep live credentials no one can revoke, and the instance could never
    be deprovisioned while the broker counts the binding.
    """


class Refusal(Error):
    """The broker answered the request itself with a 4xx: by OSB it created or changed nothing.

    Mixed into the class the caller should see (400 → invalid parameters, 409 → conflict,
    422 → unprocessable, any other 4xx → a broker error), so the controller can tell a refusal, after which
    there is nothing to clean up anywhere, from a failure (5xx, time-out, a failed
    operation), after which the broker may hold something and orphan mitigation runs.
    """


class RefusedParameters(Refusal, InvalidParametersError):
    """400: the request (usually its parameters) is bad; the user can fix it."""


class RefusedConflict(Refusal, ConflictError):
    """409: the broker holds something else under that id."""


class RefusedRequest(Refusal, UnprocessableError):
    """422: understood, and refused (a plan change it does not allow, a failed check, …)."""


class RefusedByBroker(Refusal, BrokerError):
    """Any other 4xx (401, 403, 404, …): a set-up problem between platform and broker (502)."""
