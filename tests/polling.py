"""Waiting for a condition in tests: poll with a deadline, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition()`` until it returns a truthy value (returned) or ``timeout`` passes.

    ``condition`` may raise to give up at once (a server that exited); ``detail`` adds what
    explains a timeout (a log's tail) to its message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            explained = f":\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{explained}")
        time.sleep(interval)
