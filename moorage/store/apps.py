"""The platform's state: users and their tokens, apps, shares, builds, the release ledger.

Why these shapes: releases are an append-only ledger (Deis Workflow's model). A release
points at one build (the files that run) and one config (the variables they run with);
config and build rows are never updated, so rolling back is just a new release that
points at an older build and config. Config values may hold credentials, so they are
stored only as an Encryptor token. Tokens are stored as a SHA-256 hash: a stolen
database does not hand out sessions.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from moorage.store.base import Base, utcnow

# Release status values.
DEPLOYING = "deploying"
SUCCEEDED = "succeeded"
FAILED = "failed"


class User(Base):
    __tablename__ = "platform_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255), default="")
    #: ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Token(Base):
    __tablename__ = "platform_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("platform_users.id", ondelete="CASCADE"))
    #: SHA-256 hex of the token; the token itself is shown once, at login.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_platform_tokens_user_id", "user_id"),)


class AppUid(Base):
    """A uid handed to an app: one row per uid ever handed out, kept after the app is gone.

    Why a ledger: files an app's processes leave behind (outside the folders Moorage
    removes) stay owned by its uid, so a uid is never handed out twice; the next one is
    above every row here. ``freed_at`` says when its app was destroyed.
    """

    __tablename__ = "platform_app_uids"

    uid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The app's name when the uid was handed out (names are reused; uids are not).
    app: Mapped[str] = mapped_column(String(63))
    allocated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    freed_at: Mapped[dt.datetime | None] = mapped_column()


class App(Base):
    __tablename__ = "platform_apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("platform_users.id"))
    #: The uid (and gid) its builds and processes run as (None: made before 0005, until adopted).
    uid: Mapped[int | None] = mapped_column(ForeignKey("platform_app_uids.uid"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Perm(Base):
    """An app shared with another user (a collaborator): full use, but not sharing."""

    __tablename__ = "platform_perms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("platform_apps.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("platform_users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("app_id", "user_id", name="uq_platform_perms_app_user"),)


class ConfigVars(Base):
    """One immutable set of config vars; each release points at one."""

    __tablename__ = "platform_configs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("platform_apps.id", ondelete="CASCADE"))
    #: Encryptor token of the JSON object ``{KEY: value}``.
    values_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Build(Base):
    """The files that run: an artifact directory and its process types."""

    __tablename__ = "platform_builds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("platform_apps.id", ondelete="CASCADE"))
    #: The source's version (a git sha when the client sent one, else a content digest).
    source_version: Mapped[str] = mapped_column(String(64))
    artifact: Mapped[str] = mapped_column(Text)
    procfile: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Release(Base):
    __tablename__ = "platform_releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("platform_apps.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=SUCCEEDED)
    #: Why the deploy failed, for the user.
    failure: Mapped[str | None] = mapped_column(Text)
    build_id: Mapped[str | None] = mapped_column(ForeignKey("platform_builds.id"))
    config_id: Mapped[int] = mapped_column(ForeignKey("platform_configs.id"))
    #: The config vars bound services provided in this release (None: made before 0004).
    #: A rollback drops those whose binding is gone since: their credentials are revoked.
    service_vars: Mapped[list[str] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("app_id", "version", name="uq_platform_releases_app_version"),)


class Formation(Base):
    """How many processes of each type an app should run (scaling makes no release)."""

    __tablename__ = "platform_formations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("platform_apps.id", ondelete="CASCADE"))
    process_type: Mapped[str] = mapped_column(String(63))
    count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("app_id", "process_type", name="uq_platform_formations_app_type"),)


class Domain(Base):
    __tablename__ = "platform_domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("platform_apps.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
