"""Reading and marking operation records: the queries the broker and the engine share.

Why apart from the engine: the broker's request handlers need the same answers
("what runs on this instance now?", "what was the last operation?") without running
anything, and a failed operation's effect on its resource is one rule used by both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.store.encryptor import Encryptor
from moorage.store.models import (
    BIND,
    CREATING,
    DELETING,
    DEPROVISION,
    FAILED,
    IN_PROGRESS,
    PROVISION,
    UNBIND,
    Operation,
    ServiceBinding,
    ServiceInstance,
)


def mark_failed(session: Session, op: Operation, encryptor: Encryptor) -> None:
    """What a failed operation leaves behind.

    A failed create leaves a ``failed`` resource that can still be deleted (orphan
    mitigation). A failed delete puts back the status from before the request (recorded
    in the payload), since a refusal such as "the bucket is not empty" changed nothing.
    """
    resource: Any
    if op.kind in (PROVISION, DEPROVISION):
        resource = session.get(ServiceInstance, op.instance_id)
    elif op.kind in (BIND, UNBIND):
        resource = session.get(ServiceBinding, op.binding_id)
    else:
        return
    if resource is None:
        return
    if op.kind in (PROVISION, BIND) and resource.status == CREATING:
        resource.status = FAILED
    elif op.kind in (DEPROVISION, UNBIND) and resource.status == DELETING:
        before = encryptor.decrypt_json(op.payload_enc).get("status_before", FAILED)
        resource.status = before


def active_operation(session: Session, instance_id: str, binding_id: str | None = None) -> Operation | None:
    """The in-progress operation of an instance (binding_id None) or of one binding."""
    query = select(Operation).where(Operation.instance_id == instance_id, Operation.state == IN_PROGRESS)
    if binding_id is None:
        query = query.where(Operation.binding_id.is_(None))
    else:
        query = query.where(Operation.binding_id == binding_id)
    return session.scalar(query.limit(1))


def latest_operation(session: Session, instance_id: str, binding_id: str | None = None) -> Operation | None:
    query = select(Operation).where(Operation.instance_id == instance_id)
    if binding_id is None:
        query = query.where(Operation.binding_id.is_(None))
    else:
        query = query.where(Operation.binding_id == binding_id)
    return session.scalar(query.order_by(Operation.created_at.desc()).limit(1))
