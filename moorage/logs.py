"""Logging set-up for Moorage's processes, and the filter that keeps secrets out.

Why a redaction filter on top of "never log secrets": a library (a driver error, a
URL in a debug line) can still put a password in a message. Every handler installed by
:func:`configure` masks the userinfo of URLs and ``password=…`` pairs.
"""

from __future__ import annotations

import logging
import re

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]+)@")
_KEY_VALUE = re.compile(
    r"(?i)\b(password|passwd|secret|token|secret_access_key)(\"?\s*[=:]\s*\"?)([^\s,\"'&]+)"
)


def redact(text: str) -> str:
    text = _URL_USERINFO.sub(r"\g<scheme>\g<user>:***@", text)
    return _KEY_VALUE.sub(r"\1\2***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
