"""A self-signed TLS certificate for the embedded PostgreSQL server.

Why: some applications and drivers insist on SSL (``sslmode=require``) even on loopback.
The certificate only has to make TLS possible, not prove identity (nothing can verify a
self-signed certificate), so one EC key valid for ten years for ``localhost`` and
``127.0.0.1`` is enough. Generated in-process with ``cryptography``: no openssl binary.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from moorage.embedded.files import write_for_server, write_private
from moorage.embedded.users import ServiceUser
from moorage.self_signed import self_signed_pair


def write_self_signed(
    cert_path: Path, key_path: Path, common_name: str = "localhost", *, reader: ServiceUser | None = None
) -> None:
    """Write a PEM certificate and its private key (0600, or root's 0640 for ``reader``'s group)."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Moorage embedded services"),
        ]
    )
    loopback = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert_pem, key_pem = self_signed_pair(name, loopback, days=3650)
    if reader is None:
        write_private(key_path, key_pem)
        write_private(cert_path, cert_pem, mode=0o644)
    else:
        write_for_server(key_path, key_pem, reader)
        write_for_server(cert_path, cert_pem, reader)
