"""Custom domain certificates (SNI) and the per-app HTTPS redirect setting.

Why encrypted: the private key is a secret like a config var, so both PEMs are stored
only as Encryptor tokens; the names and dates stay plain so ``certs`` lists them
without decrypting anything.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from moorage.store.base import Base, utcnow


class Certificate(Base):
    __tablename__ = "platform_certs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("platform_apps.id", ondelete="CASCADE"))
    #: The leaf's DNS names (SAN, or the common name without one), lowercase.
    names: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(1024))
    issuer: Mapped[str] = mapped_column(String(1024))
    not_before: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime]
    #: SHA-256 of the leaf (DER), hex.
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: Encryptor tokens of the chain PEM (leaf first) and of the key PEM.
    chain_enc: Mapped[bytes] = mapped_column(LargeBinary)
    key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_platform_certs_app_id", "app_id"),)


class AppTls(Base):
    """An app's TLS settings; no row means the defaults (HTTP is not redirected)."""

    __tablename__ = "platform_app_tls"

    app_id: Mapped[int] = mapped_column(ForeignKey("platform_apps.id", ondelete="CASCADE"), primary_key=True)
    force_https: Mapped[bool] = mapped_column(Boolean, default=False)
