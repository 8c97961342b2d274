"""The platform's side of services: brokers it uses, instances it asked for, bindings to apps.

Why the platform keeps its own rows: the broker is another system reached over HTTP
(perhaps someone else's), so the platform records what it asked for before asking
("record first, then act") and can always say which app holds which binding, which
config vars that binding put into the app, and clean up after a failure. Everything
secret (broker passwords, instance parameters, binding credentials) is stored only as
an Encryptor token.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from moorage.store.base import Base, utcnow

# Instance states.
CREATING = "creating"
READY = "ready"
UPDATING = "updating"
DELETING = "deleting"
INSTANCE_FAILED = "failed"

# Binding states.
BINDING = "binding"
BOUND = "bound"
UNBINDING = "unbinding"


class Broker(Base):
    """A registered OSB broker and its cached catalog."""

    __tablename__ = "platform_brokers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    url: Mapped[str] = mapped_column(Text)
    username: Mapped[str] = mapped_column(String(255))
    #: Encryptor token; empty for the built-in broker, whose password comes from settings.
    password_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The broker Moorage runs itself: URL and credentials follow the settings.
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: ``{"services": [...]}`` as the broker last sent it.
    catalog: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    etag: Mapped[str | None] = mapped_column(String(255))
    fetched_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ServiceInstance(Base):
    __tablename__ = "platform_service_instances"

    #: Also the instance id at the broker.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    owner_id: Mapped[int] = mapped_column(ForeignKey("platform_users.id"))
    broker_id: Mapped[int] = mapped_column(ForeignKey("platform_brokers.id"))
    offering_id: Mapped[str] = mapped_column(String(255))
    offering_name: Mapped[str] = mapped_column(String(255))
    plan_id: Mapped[str] = mapped_column(String(255))
    plan_name: Mapped[str] = mapped_column(String(255))
    parameters_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default=CREATING)
    #: The last operation's description, for the user (why it failed, how far it got).
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_platform_service_instances_owner_name"),)


class ServiceBinding(Base):
    __tablename__ = "platform_service_bindings"

    #: Also the binding id at the broker.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("platform_apps.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(ForeignKey("platform_service_instances.id"))
    #: The config var prefix (``DATABASE``, or the ``--as`` alias).
    alias: Mapped[str] = mapped_column(String(63))
    credentials_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The config var names this binding put into the app (and only it may change).
    var_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default=BINDING)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_platform_service_bindings_app_id", "app_id"),
        Index("ix_platform_service_bindings_instance_id", "instance_id"),
    )
