"""The broker's state: service instances, bindings, and the operations behind them.

Why rows outlive deletion: a deleted instance or binding stays as a tombstone
(``status = "gone"``) so ``last_operation`` can answer ``succeeded`` after an async delete
and a repeated DELETE answers 410, as the OSB spec asks. Secrets (parameters, provider
outputs, credentials) are stored only as Encryptor tokens in ``*_enc`` columns.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from moorage.store.base import Base, utcnow

# Resource status values.
CREATING = "creating"
READY = "ready"
FAILED = "failed"
DELETING = "deleting"
GONE = "gone"

# Operation states: exactly the OSB last_operation vocabulary.
IN_PROGRESS = "in progress"
SUCCEEDED = "succeeded"
OP_FAILED = "failed"

# Operation kinds.
PROVISION = "provision"
UPDATE = "update"
DEPROVISION = "deprovision"
BIND = "bind"
UNBIND = "unbind"


class ServiceInstance(Base):
    __tablename__ = "service_instances"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(255))
    plan_id: Mapped[str] = mapped_column(String(255))
    organization_guid: Mapped[str | None] = mapped_column(String(255))
    space_guid: Mapped[str | None] = mapped_column(String(255))
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: sha256 of the canonical request (ids, guids, parameters): a re-PUT compares it.
    request_digest: Mapped[str] = mapped_column(String(64))
    parameters_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    outputs_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    dashboard_url: Mapped[str | None] = mapped_column(Text)
    maintenance_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=CREATING)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_service_instances_status", "status"),)


class ServiceBinding(Base):
    __tablename__ = "service_bindings"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("service_instances.id", ondelete="CASCADE"))
    service_id: Mapped[str] = mapped_column(String(255))
    plan_id: Mapped[str] = mapped_column(String(255))
    app_guid: Mapped[str | None] = mapped_column(String(255))
    bind_resource: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_digest: Mapped[str] = mapped_column(String(64))
    parameters_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    outputs_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    credentials_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    endpoints: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=CREATING)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_service_bindings_instance_id", "instance_id"),)


class Operation(Base):
    """One provision/update/deprovision/bind/unbind, from request to final state.

    ``lease_owner``/``lease_until`` is the claim of the worker (or request thread) running
    it; an expired lease means that worker died and another may take the operation over.
    """

    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(255))
    binding_id: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=IN_PROGRESS)
    description: Mapped[str | None] = mapped_column(Text)
    #: The requested change for an update (plan id, parameters): applied on success only.
    payload_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[dt.datetime | None] = mapped_column()
    #: Give up (fail) after this moment; from the plan's maximum_polling_duration.
    deadline: Mapped[dt.datetime | None] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        # One active mutating operation per instance, and one per binding.
        Index(
            "uq_operations_active_instance",
            "instance_id",
            unique=True,
            sqlite_where=text("state = 'in progress' AND binding_id IS NULL"),
            postgresql_where=text("state = 'in progress' AND binding_id IS NULL"),
        ),
        Index(
            "uq_operations_active_binding",
            "binding_id",
            unique=True,
            sqlite_where=text("state = 'in progress' AND binding_id IS NOT NULL"),
            postgresql_where=text("state = 'in progress' AND binding_id IS NOT NULL"),
        ),
        Index("ix_operations_runnable", "state", "run_at"),
        Index("ix_operations_instance", "instance_id", "created_at"),
    )
