"""A self-signed TLS certificate for the embedded PostgreSQL server.

Why: some applications and drivers insist on SSL (``sslmode=require``) even on loopback.
The certificate only has to make TLS possible, not prove identity (nothing can verify a
self-signed certificate), so one EC key valid for ten years for ``localhost`` and
``127.0.0.1`` is enough. Generated in-process with ``cryptography``: no openssl binary.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from moorage.embedded.files import write_for_server, write_private
from moorage.embedded.users import ServiceUser


def write_self_signed(
    cert_path: Path, key_path: Path, common_name: str = "localhost", *, reader: ServiceUser | None = None
) -> None:
    """Write a PEM certificate and its private key (0600, or root's 0640 for ``reader``'s group)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Moorage embedded services"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    if reader is None:
        write_private(key_path, key_pem)
        write_private(cert_path, cert_pem, mode=0o644)
    else:
        write_for_server(key_path, key_pem, reader)
        write_for_server(cert_path, cert_pem, reader)
