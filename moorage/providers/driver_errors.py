"""Database and Redis drivers' errors as :class:`ProviderError`, with the server named.

Why: the operation engine retries a :class:`ProviderError` and shows its message, so a
provider says which server it talked to and whether the server could not be reached (a
connection-level error: often gone by the next try) or answered with a refusal. Every
provider that talks to a server through a driver makes that distinction the same way;
only the driver's exception classes and the wording differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from moorage.errors import ProviderError


def first_line(exc: BaseException) -> str:
    """The first line of a driver's message (PostgreSQL adds DETAIL/HINT lines), or the class name."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def as_provider_error(
    *says: tuple[type[BaseException], str], describe: Callable[[BaseException], str] = str
) -> Iterator[None]:
    """Raise ``ProviderError("<what it says>: <describe(exc)>")`` for the first class that matches.

    ``says`` goes from the narrowest class to the widest, e.g. the driver's connection
    error, then its base error; an exception that matches none passes through unchanged.
    """
    try:
        yield
    except BaseException as exc:
        for kind, what in says:
            if isinstance(exc, kind):
                raise ProviderError(f"{what}: {describe(exc)}") from None
        raise
