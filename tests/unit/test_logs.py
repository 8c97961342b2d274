"""The log formatter masks secrets in every shape a library may print them, tracebacks too."""

from __future__ import annotations

import io
import logging

import pytest

from moorage.logs import RedactingFormatter, redact

SECRET = "hunter2-Zq9"


@pytest.mark.parametrize(
    "line",
    [
        f"connecting to postgresql://admin:{SECRET}@db:5432/x",
        f"password={SECRET}",
        f"MasterUserPassword={SECRET}",
        f"{{'password': '{SECRET}', 'user': 'a'}}",
        f'{{"secret_access_key": "{SECRET}"}}',
        f"token: {SECRET}",
    ],
)
def test_redact_masks_the_value_and_keeps_the_rest(line: str) -> None:
    cleaned = redact(line)
    assert SECRET not in cleaned
    assert "***" in cleaned


def test_tracebacks_are_redacted_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(message)s"))
    logger = logging.getLogger("moorage.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(f"could not connect with {{'password': '{SECRET}'}}")
        except RuntimeError:
            logger.exception("bind failed for user alice")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "bind failed for user alice" in text and "RuntimeError" in text
    assert SECRET not in text
