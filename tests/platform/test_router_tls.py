"""The router's TLS listener against real nginx, with curl (HTTP/2) and requests as clients.

Certificates are made in the tests with ``cryptography``: a CA and a leaf it signs for
an operator's certificate, an expired one and a key that belongs to another one.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from moorage.embedded.ports import free_port
from moorage.errors import ConfigurationError
from moorage.platform.router import Router
from moorage.platform.router.tls import check_pair
from moorage.settings import Settings
from tests.fixtures.pki import key_pem, make_ca, make_leaf, pem
from tests.fixtures.router import router_settings
from tests.polling import wait_for

HOST = "tls.moorage.localhost"


def tls_settings(data_dir: Path, **platform: object) -> Settings:
    return router_settings(data_dir, router_https_port=free_port(), **platform)


def curl(router: Router, host: str, ca: Path, *extra: str) -> tuple[dict, str]:
    """(the app's JSON answer, HTTP version) of one HTTPS request by curl, verifying with ``ca``."""
    port = router.https_port
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(ca), "--resolve", f"{host}:{port}:127.0.0.1",
         "-w", "\n%{http_version}", *extra, f"https://{host}:{port}/"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    body, version = out.stdout.rsplit("\n", 1)
    return json.loads(body), version


def test_self_signed_default_serves_apps_over_http2_with_forwarded_proto(
    data_dir: Path, backends: list[int]
) -> None:
    router = Router(tls_settings(data_dir))
    router.start()
    try:
        router.set_routes("tls", [HOST], [("127.0.0.1", backends[0])])
        cert = data_dir / "router" / "tls" / "default.crt"
        assert (data_dir / "router" / "tls" / "default.key").stat().st_mode & 0o777 == 0o600
        # A client claiming plain HTTP cannot change what the app is told.
        data, version = curl(router, HOST, cert, "-H", "X-Forwarded-Proto: http")
        assert version == "2"
        assert data["headers"]["x-forwarded-proto"] == "https"
        assert data["headers"]["x-forwarded-port"] == str(router.https_port)
        # HTTP keeps working beside it, and says http.
        plain = requests.get(f"http://127.0.0.1:{router.port}/", headers={"Host": HOST}, timeout=10)
        assert plain.json()["headers"]["x-forwarded-proto"] == "http"
        # The certificate names the base domain's wildcard: another app's name fails nothing.
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "*.moorage.localhost" in names.get_values_for_type(x509.DNSName)
    finally:
        router.stop()
    # A second start keeps the certificate made at the first (install).
    again = Router(tls_settings(data_dir))
    before = cert.read_bytes()
    again.start()
    again.stop()
    assert cert.read_bytes() == before


def test_operator_certificate_chain_is_served(data_dir: Path, backends: list[int]) -> None:
    ca_key, ca = make_ca()
    key, leaf = make_leaf(ca_key, ca, "*.apps.example.test")
    cert_file, key_file, ca_file = data_dir / "chain.pem", data_dir / "leaf.key", data_dir / "ca.pem"
    cert_file.write_bytes(pem(leaf) + pem(ca))
    key_file.write_bytes(key_pem(key))
    ca_file.write_bytes(pem(ca))
    settings = tls_settings(data_dir, router_tls_cert_file=str(cert_file), router_tls_key_file=str(key_file))
    router = Router(settings)
    router.start()
    try:
        router.set_routes("shop", ["shop.apps.example.test"], [("127.0.0.1", backends[0])])
        data, _ = curl(router, "shop.apps.example.test", ca_file)
        assert data["headers"]["host"] == f"shop.apps.example.test:{router.https_port}"
        assert data["headers"]["x-forwarded-proto"] == "https"
    finally:
        router.stop()


def test_mismatched_or_expired_pair_is_refused_before_nginx_starts(data_dir: Path) -> None:
    ca_key, ca = make_ca()
    key, leaf = make_leaf(ca_key, ca, "*.apps.example.test")
    other, _ = make_leaf(ca_key, ca, "*.other.example.test")
    _, expired = make_leaf(ca_key, ca, "*.apps.example.test", days=-1, key=key)
    cert_file, key_file = data_dir / "cert.pem", data_dir / "key.pem"
    cases = [
        (pem(leaf), key_pem(other), "does not belong to the certificate"),
        (pem(expired), key_pem(key), "expired on"),
        (b"not a certificate", key_pem(key), "not a PEM certificate"),
    ]
    for cert_bytes, key_bytes, message in cases:
        cert_file.write_bytes(cert_bytes)
        key_file.write_bytes(key_bytes)
        settings = tls_settings(
            data_dir, router_tls_cert_file=str(cert_file), router_tls_key_file=str(key_file)
        )
        router = Router(settings)
        with pytest.raises(ConfigurationError, match=message):
            router.start()
        assert not router.running
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", settings.platform.router_port), timeout=0.5)


def test_tls_keep_alive_load_loses_nothing_across_endpoint_changes(
    data_dir: Path, backends: list[int]
) -> None:
    router = Router(tls_settings(data_dir))
    router.start()
    failures: list[str] = []
    count = 0
    stop = threading.Event()
    cert = str(data_dir / "router" / "tls" / "default.crt")

    def client() -> None:
        nonlocal count
        conn = https_connection(router, cert)
        while not stop.is_set():
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    failures.append(f"{response.status} {body[:80]!r}")
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                conn.close()
            count += 1
        conn.close()

    try:
        router.set_routes("tls", [HOST], [("127.0.0.1", backends[0])])
        master = router.master_pid
        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for i in range(20):
                router.set_routes("tls", [HOST], [("127.0.0.1", backends[i % 2])])
                before = count
                wait_for(lambda before=before: count >= before + 3, what="requests after a change")
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert failures == []
        assert count > 60
        assert router.master_pid == master
    finally:
        router.stop()


# -- clients and certificates ---------------------------------------------------------------


def https_connection(router: Router, ca: str) -> http.client.HTTPSConnection:
    """A keep-alive HTTPS connection to ``HOST`` (SNI and verification) on 127.0.0.1."""
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(HOST, router.https_port, context=context, timeout=10)
    # HOST is not in DNS: connect to the router's address, keep the name for TLS.
    conn._create_connection = lambda address, *args: socket.create_connection(  # type: ignore[attr-defined]
        ("127.0.0.1", address[1]), *args
    )
    return conn


def test_a_new_base_domain_gets_a_new_default_certificate(data_dir: Path) -> None:
    def names() -> list[str]:
        leaf = x509.load_pem_x509_certificate((data_dir / "router" / "tls" / "default.crt").read_bytes())
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return san.get_values_for_type(x509.DNSName)

    for domain in ("first.example.test", "second.example.test"):
        router = Router(tls_settings(data_dir, base_domain=domain))
        router.start()
        router.stop()
        assert names() == [f"*.{domain}", domain]


def test_a_key_left_without_its_certificate_is_replaced_with_a_matching_pair(data_dir: Path) -> None:
    settings = tls_settings(data_dir, base_domain="pair.example.test")
    first = Router(settings)
    first.start()  # makes the self-signed pair
    first.stop()
    folder = data_dir / "router" / "tls"
    stray = ec.generate_private_key(ec.SECP256R1())  # as if a crash came after the key was replaced
    (folder / "default.key").write_bytes(key_pem(stray))
    router = Router(settings)
    router.start()
    router.stop()
    check_pair((folder / "default.crt").read_bytes(), (folder / "default.key").read_bytes())
