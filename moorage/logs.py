"""Logging set-up for Moorage's processes, and the formatter that keeps secrets out.

Why redaction on top of "never log secrets": a library (a driver error, a URL in a
debug line, a dict in a traceback) can still put a password in a line. The handler
installed by :func:`configure` formats each record — message and traceback — and then
masks the userinfo of URLs and the values of password-, secret- and token-like keys, in
``key=value``, ``key: value`` and ``'key': 'value'`` shapes.
"""

from __future__ import annotations

import logging
import re

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]+)@")
_KEY_VALUE = re.compile(
    r"(?i)(?P<key>[\"']?[a-z0-9_]*(?:password|passwd|secret|token)[a-z0-9_]*[\"']?)"
    r"(?P<sep>\s*[=:]\s*[\"']?)(?P<value>[^\s,\"'&}]+)"
)


def redact(text: str) -> str:
    text = _URL_USERINFO.sub(r"\g<scheme>\g<user>:***@", text)
    return _KEY_VALUE.sub(r"\g<key>\g<sep>***", text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (message, traceback, stack) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
