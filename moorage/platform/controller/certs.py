"""Custom domain certificates (``certs:add``) served by SNI, and the HTTPS redirect setting.

Why checked here: a certificate nginx cannot use, or one that does not name the app's
domains, would only show up as a TLS error in a visitor's browser. So ``add`` refuses,
with the reason, a chain that is not leaf first and each signed by the next, a key that
is not the leaf's, a certificate that is expired or not yet valid, and one that covers
none of the app's custom domains; nothing is stored then. The PEMs are stored only as
Encryptor tokens (the key is a secret like a config var). Which certificate serves a
domain is decided here (the newest one covering it) and the router is told the whole
set whenever certificates, domains or the redirect setting change (the runtime's
``tls_sink``: Moorage's router, or on Kubernetes the app's Ingress with a Secret per certificate).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.errors import ConfigurationError, InvalidParametersError, NotFoundError, UnprocessableError
from moorage.platform.controller.apps import find
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.router.config import SniCertificate
from moorage.platform.router.tls import check_pair
from moorage.store.apps import App, Domain
from moorage.store.certs import AppTls, Certificate

MAX_PEM_BYTES = 64 * 1024


def covers(pattern: str, host: str) -> bool:
    """Whether a certificate name covers a host (RFC 6125: ``*`` is one whole left label)."""
    if pattern == host:
        return True
    if not pattern.startswith("*.") or host.startswith("*."):
        return False
    label, _, parent = host.partition(".")
    return bool(label) and parent == pattern[2:]


def validate(cert_pem: Any, key_pem: Any) -> tuple[list[x509.Certificate], list[str]]:
    """The parsed chain and the leaf's DNS names; a clear error for anything unusable."""
    if not isinstance(cert_pem, str) or not isinstance(key_pem, str) or not cert_pem or not key_pem:
        raise InvalidParametersError(
            'give both PEM texts: {"certificate": "-----BEGIN …", "key": "-----BEGIN …"}'
        )
    if len(cert_pem) > MAX_PEM_BYTES or len(key_pem) > MAX_PEM_BYTES:
        raise InvalidParametersError(
            f"the certificate chain and the key must each be under {MAX_PEM_BYTES} bytes"
        )
    try:
        check_pair(cert_pem.encode(), key_pem.encode())
    except ConfigurationError as exc:
        raise InvalidParametersError(str(exc)) from None
    chain = x509.load_pem_x509_certificates(cert_pem.encode())
    _check_chain(chain)
    return chain, _names(chain[0])


def _check_chain(chain: list[x509.Certificate]) -> None:
    now = dt.datetime.now(dt.UTC)
    for position, (cert, issuer) in enumerate(zip(chain, chain[1:], strict=False), start=1):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise InvalidParametersError(
                f"the chain is out of order or incomplete: certificate {position} "
                f"({cert.subject.rfc4514_string()}) is not signed by the next one "
                f"({issuer.subject.rfc4514_string()}); give the leaf first, then each issuer"
            ) from None
        if not issuer.not_valid_before_utc <= now < issuer.not_valid_after_utc:
            raise InvalidParametersError(
                f"certificate {position + 1} of the chain ({issuer.subject.rfc4514_string()}) is not valid now "
                f"(valid {issuer.not_valid_before_utc:%Y-%m-%d} to {issuer.not_valid_after_utc:%Y-%m-%d})"
            )


def _names(leaf: x509.Certificate) -> list[str]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return list(dict.fromkeys(n.lower().rstrip(".") for n in names))


def _require_https(platform: Platform) -> None:
    """Certificates and redirects need something serving HTTPS: refused where nothing would."""
    sink = platform.runtime.tls_sink
    if sink is None:
        raise UnprocessableError(
            "certificates are served by Moorage's router or, on Kubernetes, by the apps' Ingress "
            f"(MOORAGE_KUBERNETES_INGRESS_CLASS); this controller's {platform.settings.platform.runtime} "
            "runtime has neither"
        )
    refusal = sink.https_refusal()
    if refusal:
        raise UnprocessableError(refusal)


def add(platform: Platform, who: Principal, name: str, cert_pem: Any, key_pem: Any) -> dict[str, Any]:
    _require_https(platform)
    chain, names = validate(cert_pem, key_pem)
    leaf = chain[0]
    with platform.app_lock(name):
        with platform.db.unit_of_work() as s:
            app = find(s, who, name)
            domains = _domains(s, app)
            served = [d for d in domains if any(covers(n, d) for n in names)]
            if not served:
                raise InvalidParametersError(
                    f"the certificate names {', '.join(names) or 'no DNS name'}, which covers none of "
                    f"{name}'s custom domains ({', '.join(domains) or 'none yet; add one with domains:add'})"
                )
            row = Certificate(
                app_id=app.id,
                names=names,
                subject=leaf.subject.rfc4514_string(),
                issuer=leaf.issuer.rfc4514_string(),
                not_before=leaf.not_valid_before_utc,
                not_after=leaf.not_valid_after_utc,
                fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
                chain_enc=platform.encryptor.encrypt(cert_pem.encode()),
                key_enc=platform.encryptor.encrypt(key_pem.encode()),
            )
            s.add(row)
            s.flush()
            cert_id = row.id
        try:
            publish(platform, name)
        except Exception:  # the router (or Kubernetes) refused it: forget it, so state and sink agree
            with platform.db.unit_of_work() as s:
                s.delete(s.get(Certificate, cert_id))
            raise
    return next(c for c in list_certs(platform, who, name)["certs"] if c["id"] == cert_id)


def list_certs(platform: Platform, who: Principal, name: str) -> dict[str, Any]:
    with platform.db.unit_of_work() as s:
        app = find(s, who, name)
        serving = _serving(s, app)
        certs = [
            {
                "id": c.id,
                "names": c.names,
                "subject": c.subject,
                "issuer": c.issuer,
                "not_before": c.not_before.isoformat(),
                "expires_at": c.not_after.isoformat(),
                "fingerprint": c.fingerprint,
                "domains": sorted(d for d, cert in serving.items() if cert.id == c.id),
            }
            for c in _certs(s, app)
        ]
        return {"certs": certs, "force_https": _force_https(s, app)}


def remove(platform: Platform, who: Principal, name: str, raw: Any) -> list[int]:
    """Remove the app's certificates that cover the domain; returns their ids."""
    domain = raw.strip().lower().rstrip(".") if isinstance(raw, str) else ""
    with platform.app_lock(name):
        with platform.db.unit_of_work() as s:
            app = find(s, who, name)
            gone = [c for c in _certs(s, app) if any(covers(n, domain) for n in c.names)]
            if not gone:
                raise NotFoundError(f"{name} has no certificate for {domain}; see `moorage certs`")
            ids = [c.id for c in gone]
            for cert in gone:
                s.delete(cert)
        publish(platform, name)
    return ids


def set_force_https(platform: Platform, who: Principal, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidParametersError('give {"force_https": true} or {"force_https": false}')
    if value:
        _require_https(platform)
    with platform.app_lock(name):
        with platform.db.unit_of_work() as s:
            app = find(s, who, name)
            row = s.get(AppTls, app.id)
            if row is None:
                s.add(AppTls(app_id=app.id, force_https=value))
            else:
                row.force_https = value
        publish(platform, name)
    return value


def publish(platform: Platform, name: str) -> None:
    """Tell the router which certificate serves each custom domain of the app (the newest covering it)."""
    sink = platform.runtime.tls_sink
    if sink is None:
        return
    with platform.db.unit_of_work() as s:
        app = s.scalar(select(App).where(App.name == name))
        if app is None:
            return
        hosts: dict[int, list[str]] = {}
        rows: dict[int, Certificate] = {}
        for domain, cert in _serving(s, app).items():
            hosts.setdefault(cert.id, []).append(domain)
            rows[cert.id] = cert
        certs = [
            SniCertificate(
                hosts=tuple(sorted(hosts[i])),
                cert_pem=platform.encryptor.decrypt(rows[i].chain_enc).decode(),
                key_pem=platform.encryptor.decrypt(rows[i].key_enc).decode(),
            )
            for i in sorted(hosts)
        ]
        force = _force_https(s, app)
    sink.set_tls(name, certs, force)


def _serving(s: Session, app: App) -> dict[str, Certificate]:
    """Custom domain -> the newest certificate of the app that covers it."""
    certs = _certs(s, app)
    found = {}
    for domain in _domains(s, app):
        for cert in reversed(certs):
            if any(covers(n, domain) for n in cert.names):
                found[domain] = cert
                break
    return found


def _certs(s: Session, app: App) -> list[Certificate]:
    return list(s.scalars(select(Certificate).where(Certificate.app_id == app.id).order_by(Certificate.id)))


def _domains(s: Session, app: App) -> list[str]:
    return list(s.scalars(select(Domain.domain).where(Domain.app_id == app.id).order_by(Domain.id)))


def _force_https(s: Session, app: App) -> bool:
    row = s.get(AppTls, app.id)
    return bool(row and row.force_https)
