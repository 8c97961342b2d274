"""The router's default TLS certificate: the operator's, or one made for ``*.<base domain>``.

Why checked here: nginx refuses a key that does not match its certificate only when it
starts, with an OpenSSL error in its log; Moorage checks the pair first (and that the
certificate has not expired) and says what is wrong. When the operator gives no
certificate, a self-signed one for ``*.<base domain>`` and the base domain itself is
made once (on the first start, which is the install) with ``cryptography`` and kept in
``<data dir>/router/tls/``, key 0600; a new one is made when the base domain changes.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from moorage.errors import ConfigurationError
from moorage.self_signed import self_signed_pair

SELF_SIGNED_DAYS = 825


def default_pair(root: Path, base_domain: str, cert_file: str, key_file: str) -> tuple[Path, Path]:
    """(certificate, key) files for the router's TLS listener, checked."""
    if cert_file or key_file:
        if not (cert_file and key_file):
            raise ConfigurationError("router_tls_cert_file and router_tls_key_file go together: set both")
        cert, key = Path(cert_file), Path(key_file)
        check_pair(_read(cert, "certificate"), _read(key, "key"))
        return cert, key
    folder = root / "tls"
    cert, key = folder / "default.crt", folder / "default.key"
    if not _covers(cert, key, base_domain):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        _write_self_signed(cert, key, base_domain)
    return cert, key


def check_pair(cert_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """The leaf certificate of ``cert_pem`` if ``key_pem`` is its key and it is valid now."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise ConfigurationError("the TLS certificate is not a PEM certificate (chain)") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError("the TLS key is not an unencrypted PEM private key") from None
    leaf = chain[0]
    if leaf.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
        raise ConfigurationError("the TLS key does not belong to the certificate (their public keys differ)")
    now = datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc <= now:
        raise ConfigurationError(f"the TLS certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    if leaf.not_valid_before_utc > now:
        raise ConfigurationError(
            f"the TLS certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}"
        )
    return leaf


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the TLS {what} {path}: {exc.strerror}") from None


def _covers(cert: Path, key: Path, base_domain: str) -> bool:
    """Whether the self-signed pair exists and matches, names ``*.<base_domain>``, is valid a month on.

    The key is replaced before the certificate, so a crash in between leaves a new key
    with the old certificate: the pair check makes the next start write both again.
    """
    try:
        leaf = check_pair(cert.read_bytes(), key.read_bytes())
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound, ConfigurationError):
        return False
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    return f"*.{base_domain}" in names.get_values_for_type(x509.DNSName) and leaf.not_valid_after_utc > soon


def _write_self_signed(cert: Path, key_path: Path, base_domain: str) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{base_domain}")])
    names: list[x509.GeneralName] = [x509.DNSName(f"*.{base_domain}"), x509.DNSName(base_domain)]
    cert_bytes, key_bytes = self_signed_pair(name, names, days=SELF_SIGNED_DAYS)
    tmp = key_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_bytes)
    os.replace(tmp, key_path)
    cert.write_bytes(cert_bytes)
