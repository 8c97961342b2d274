"""The router's forwarding headers against real nginx: a client cannot choose any of them.

Rack reads ``Forwarded`` before ``X-Forwarded-*`` and trusts ``X-Forwarded-Ssl: on``;
Django (``USE_X_FORWARDED_HOST``) and Express (``trust proxy``) read ``X-Forwarded-Host``.
A plain-HTTP client that could pass its own copies would make an app believe the request
came over HTTPS, or for another host (password-reset links, caches). The app here is the
echo app, which answers with every header line it was sent.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.embedded.ports import free_port
from moorage.platform.router import Router
from tests.fixtures.router import echo_router, router_settings
from tests.host_requests import request

HOST = "fwd.moorage.localhost"

#: What a hostile client sends, each meant to claim HTTPS or another host.
SPOOFED = {
    "Forwarded": "for=6.6.6.6;proto=https;host=evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Ssl": "on",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Scheme": "https",
    "X-Forwarded-Port": "443",
    "X-Request-Start": "1",
    "X-Real-IP": "6.6.6.6",
    "Client-IP": "6.6.6.6",
    "True-Client-IP": "6.6.6.6",
    # nginx drops header names with underscores; a CGI-style app would read it as the same.
    "X_Forwarded_Host": "evil.example",
}

#: Over TLS the opposite claim: plain HTTP (an app would then redirect forever, or log it).
SPOOFED_PLAIN = {
    **SPOOFED,
    "Forwarded": "for=6.6.6.6;proto=http;host=evil.example",
    "X-Forwarded-Ssl": "off",
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Scheme": "http",
    "X-Forwarded-Port": "80",
}

#: The forwarding headers an app may be sent, all set by the router (or none at all).
ROUTER_SET = ("forwarded", "x-forwarded-host", "x-forwarded-ssl", "x-forwarded-proto",
              "x-forwarded-scheme", "x-forwarded-port", "x-request-start", "x_forwarded_host",
              "x-real-ip", "client-ip", "true-client-ip")  # fmt: skip


@pytest.fixture
def router(data_dir: Path) -> Iterator[Router]:
    with echo_router(router_settings(data_dir, router_https_port=free_port()), "fwd", HOST) as r:
        yield r


def forwarding(answer: dict) -> dict[str, list[str]]:
    """Each forwarding header the app received, with every value it was sent."""
    seen: dict[str, list[str]] = {}
    for name, value in answer["header_lines"]:
        if name in ROUTER_SET:
            seen.setdefault(name, []).append(value)
    return seen


def assert_request_start(values: list[str], before: float, after: float) -> None:
    """Heroku's X-Request-Start: integer milliseconds since the epoch, taken by the router."""
    assert len(values) == 1 and values[0].isdigit(), values
    assert int(before * 1000) - 1 <= int(values[0]) <= int(after * 1000) + 1


def test_plain_http_client_cannot_claim_https_or_another_host(router: Router) -> None:
    before = time.time()
    status, body, _ = request(router.port, HOST, headers=SPOOFED)
    after = time.time()
    assert status == 200
    seen = forwarding(json.loads(body))
    assert_request_start(seen.pop("x-request-start"), before, after)
    # No Forwarded, no X-Forwarded-Ssl: Rack then falls back to X-Forwarded-Proto, http.
    assert seen == {
        "x-forwarded-host": [HOST],
        "x-forwarded-proto": ["http"],
        "x-forwarded-scheme": ["http"],
        "x-forwarded-port": [str(router.port)],
    }


def test_tls_client_gets_the_routers_https_values_only(router: Router) -> None:
    cert = router.settings.data_dir / "router" / "tls" / "default.crt"
    port = router.https_port
    claims = [arg for name, value in SPOOFED_PLAIN.items() for arg in ("-H", f"{name}: {value}")]
    before = time.time()
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(cert), "--resolve", f"{HOST}:{port}:127.0.0.1",
         *claims, f"https://{HOST}:{port}/"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    after = time.time()
    assert out.returncode == 0, out.stderr
    seen = forwarding(json.loads(out.stdout))
    assert_request_start(seen.pop("x-request-start"), before, after)
    assert seen == {
        "x-forwarded-host": [HOST],
        "x-forwarded-ssl": ["on"],
        "x-forwarded-proto": ["https"],
        "x-forwarded-scheme": ["https"],
        "x-forwarded-port": [str(port)],
    }


def test_x_forwarded_for_is_appended_to_with_the_client_last(router: Router) -> None:
    status, body, _ = request(router.port, HOST, headers={"X-Forwarded-For": "6.6.6.6"})
    assert status == 200
    # As on Heroku: earlier entries are the client's word; the last one is the router's.
    assert json.loads(body)["headers"]["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"


def raw_request(port: int, head: str) -> bytes:
    """One request written byte for byte: http.client cannot send an absolute-form line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + b"Connection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_host_header_must_name_the_host_the_request_was_routed_by(router: Router) -> None:
    # nginx routes by the request line's host; the app would be told the Host header's.
    answer = raw_request(router.port, f"GET http://{HOST}/ HTTP/1.1\r\nHost: evil.example\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Host header" in answer
    assert b"evil.example" not in answer
    # The same host in either spelling (case, trailing dot, port) is fine.
    spelled = f"{HOST.upper()}.:{router.port}"
    answer = raw_request(router.port, f"GET http://{HOST}/ HTTP/1.1\r\nHost: {spelled}\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["headers"]["host"] == spelled
