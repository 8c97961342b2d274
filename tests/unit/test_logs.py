"""The log formatter masks secrets in every shape a library may print them, tracebacks too."""

from __future__ import annotations

import io
import logging

import pytest

from moorage.logs import RedactingFormatter, redact

SECRET = "hunter2-Zq9"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f"connecting to postgresql://admin:{SECRET}@db:5432/x",
            "connecting to postgresql://admin:***@db:5432/x",
        ),
        (f"password={SECRET}", "password=***"),
        (f"MasterUserPassword={SECRET}", "MasterUserPassword=***"),
        (f"{{'password': '{SECRET}', 'user': 'a'}}", "{'password': '***', 'user': 'a'}"),
        (f'{{"secret_access_key": "{SECRET}"}}', '{"secret_access_key": "***"}'),
        (f"token: {SECRET}", "token: ***"),
    ],
)
def test_redact_masks_the_value_and_keeps_the_rest(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_lines_without_secrets_are_left_alone() -> None:
    line = "provisioned instance 8c1e… in 0.4 s (user=alice, host=db:5432)"
    assert redact(line) == line


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
