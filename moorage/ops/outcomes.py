"""Recording the outcome of an operation step: success, a wait, a retry or a failure.

Why apart from the engine: the engine decides *what* happened to a provider call; this
module writes it down. A step's result (success, a wait, a retry, running out of time)
lands only while this runner still holds the operation's lease (compare-and-set on
``state`` and ``lease_owner``, with the row locked on PostgreSQL), so a runner whose
lease was taken over never overwrites what the new runner recorded. :meth:`Outcomes.finish`
(a failure, also used when a request gives up on an operation) needs only the operation
to be still in progress.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.ops.records import mark_failed
from moorage.settings import Settings
from moorage.store.base import utcnow
from moorage.store.db import Database
from moorage.store.encryptor import Encryptor
from moorage.store.models import (
    DEPROVISION,
    GONE,
    IN_PROGRESS,
    OP_FAILED,
    PROVISION,
    READY,
    SUCCEEDED,
    UNBIND,
    UPDATE,
    Operation,
    ServiceBinding,
    ServiceInstance,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOutcome:
    state: str
    #: Seconds until the next step is due, when still in progress.
    retry_in: float = 0.0
    description: str = ""
    #: The failure was a refusal (PermanentError and the like), not a breakdown.
    refused: bool = False
    #: The provider's return value when the step succeeded (a BindResult for binds).
    result: Any = None


class Outcomes:
    """Writes step outcomes for one runner (``owner``) of operations."""

    def __init__(self, db: Database, encryptor: Encryptor, owner: str, settings: Settings) -> None:
        self.db = db
        self.encryptor = encryptor
        self.owner = owner
        self.settings = settings

    def too_late(
        self,
        op: Operation,
        message: str,
        checkpoint: dict[str, Any] | None = None,
        target: str = "instance",
    ) -> StepOutcome:
        """Fail an operation that ran out of time, keeping its last checkpoint.

        One transaction, and only while we still hold the operation (like
        ``_reschedule``): a runner whose lease was taken over must not overwrite the new
        runner's checkpoint.
        """
        log.warning("operation ran out of time: %s", message, extra={"operation": op.id, "kind": op.kind})
        description = f"{op.kind} did not finish in time: {message}"
        with self.db.unit_of_work() as session:
            owned = self.owned(session, op.id)
            if owned is None:
                return self.not_ours(session, op.id)
            self._merge_checkpoint(session, owned, target, checkpoint)
            self._fail(session, owned, OP_FAILED, description)
        return StepOutcome(OP_FAILED, description=description)

    def not_ours(self, session: Session, op_id: str) -> StepOutcome:
        op = session.get(Operation, op_id)
        if op is None:
            return StepOutcome(OP_FAILED, description="the operation no longer exists")
        return StepOutcome(op.state, description=op.description or "")

    def owned(self, session: Session, op_id: str) -> Operation | None:
        # Locked on PostgreSQL: a concurrent cancel either lands before this check or waits.
        op = session.get(Operation, op_id, with_for_update=True)
        if op is None or op.state != IN_PROGRESS or op.lease_owner != self.owner:
            return None  # cancelled or taken over meanwhile: our result is discarded
        return op

    def reschedule(
        self,
        op_id: str,
        delay: float,
        message: str,
        checkpoint: dict[str, Any] | None = None,
        target: str | None = None,
    ) -> StepOutcome:
        with self.db.unit_of_work() as session:
            op = self.owned(session, op_id)
            if op is None:
                return self.not_ours(session, op_id)
            self._merge_checkpoint(session, op, target or "instance", checkpoint)
            op.run_at = utcnow() + dt.timedelta(seconds=max(delay, 0.0))
            op.description = message
            op.lease_owner = op.lease_until = None
        return StepOutcome(IN_PROGRESS, retry_in=max(delay, 0.0), description=message)

    def retry(self, op_id: str, message: str, extra: dict[str, Any]) -> StepOutcome:
        worker = self.settings.worker
        with self.db.unit_of_work() as session:
            op = self.owned(session, op_id)
            if op is None:
                return self.not_ours(session, op_id)
            op.attempts += 1
            if op.attempts >= worker.max_attempts:
                attempts = op.attempts
            else:
                delay = min(worker.backoff_seconds * 2 ** (op.attempts - 1), worker.backoff_max_seconds)
                op.run_at = utcnow() + dt.timedelta(seconds=delay)
                op.lease_owner = op.lease_until = None  # due again after the backoff, for anyone
                op.description = (
                    f"retrying after an error (attempt {op.attempts} of {worker.max_attempts}): {message}"
                )
                log.info("operation retries in %.1fs", delay, extra=extra)
                return StepOutcome(IN_PROGRESS, retry_in=delay, description=op.description)
        return self.finish(op_id, OP_FAILED, f"gave up after {attempts} attempts: {message}")

    def succeed(self, op: Operation, result: Any) -> StepOutcome:
        """Record success: the operation and its resource, in one transaction.

        Core statements, not the ORM: this runs inside every synchronous request, and a
        compare-and-set UPDATE (still in progress, still our lease) both checks and
        writes the operation in one statement; on PostgreSQL it also takes the row lock
        that a concurrent cancel waits for.
        """
        description = f"{op.kind} succeeded"
        if op.kind in (PROVISION, UPDATE, DEPROVISION):
            table, key, values = ServiceInstance.__table__, op.instance_id, self._instance_values(op, result)
        else:
            table, key, values = ServiceBinding.__table__, op.binding_id, self._binding_values(op, result)
        operations = Operation.__table__
        with self.db.engine.begin() as conn:
            done = conn.execute(
                operations.update()
                .where(
                    operations.c.id == op.id,
                    operations.c.state == IN_PROGRESS,
                    operations.c.lease_owner == self.owner,
                )
                .values(
                    state=SUCCEEDED,
                    description=description,
                    finished_at=utcnow(),
                    lease_owner=None,
                    lease_until=None,
                )
            )
            if done.rowcount != 1:  # cancelled or taken over meanwhile: our result is discarded
                row = conn.execute(
                    select(operations.c.state, operations.c.description).where(operations.c.id == op.id)
                ).first()
                if row is None:
                    return StepOutcome(OP_FAILED, description="the operation no longer exists")
                return StepOutcome(row.state, description=row.description or "")
            conn.execute(table.update().where(table.c.id == key).values(**values))
        return StepOutcome(SUCCEEDED, description=description, result=result)

    def _instance_values(self, op: Operation, result: Any) -> dict[str, Any]:
        if op.kind == DEPROVISION:
            return {"status": GONE, "outputs_enc": None, "parameters_enc": None}
        values: dict[str, Any] = {
            "status": READY,
            "outputs_enc": self.encryptor.encrypt_json(dict(result.outputs)),
        }
        if result.dashboard_url:
            values["dashboard_url"] = result.dashboard_url
        if op.kind == UPDATE:
            payload = self.encryptor.decrypt_json(op.payload_enc)
            if payload.get("plan_id"):
                values["plan_id"] = payload["plan_id"]
            if "parameters" in payload:
                values["parameters_enc"] = self.encryptor.encrypt_json(payload["parameters"])
            if payload.get("maintenance_version"):
                values["maintenance_version"] = payload["maintenance_version"]
            if payload.get("context"):
                values["context"] = payload["context"]
        return values

    def _binding_values(self, op: Operation, result: Any) -> dict[str, Any]:
        if op.kind == UNBIND:
            return {"status": GONE, "credentials_enc": None, "outputs_enc": None, "parameters_enc": None}
        return {
            "status": READY,
            "credentials_enc": self.encryptor.encrypt_json(dict(result.credentials)),
            "endpoints": [e.to_osb() for e in result.endpoints],
            "outputs_enc": self.encryptor.encrypt_json(dict(result.outputs)),
        }

    def finish(self, op_id: str, state: str, description: str, refused: bool = False) -> StepOutcome:
        """Fail an operation (only failures come here; success goes through :meth:`succeed`)."""
        with self.db.unit_of_work() as session:
            op = session.get(Operation, op_id, with_for_update=True)
            if op is None or op.state != IN_PROGRESS:
                return StepOutcome(
                    op.state if op else state, description=(op.description or "") if op else ""
                )
            self._fail(session, op, state, description)
        return StepOutcome(state, description=description, refused=refused)

    def _fail(self, session: Session, op: Operation, state: str, description: str) -> None:
        op.state = state
        op.description = description
        op.finished_at = utcnow()
        op.lease_owner = op.lease_until = None
        mark_failed(session, op, self.encryptor)

    def _merge_checkpoint(
        self, session: Session, op: Operation, target: str, checkpoint: dict[str, Any] | None
    ) -> None:
        """Keep what a provider checkpointed (ids of what it created) with its resource."""
        if not checkpoint:
            return
        resource = self._resource(session, op, target)
        merged = {**self.encryptor.decrypt_json(resource.outputs_enc), **checkpoint}
        resource.outputs_enc = self.encryptor.encrypt_json(merged)

    def _resource(self, session: Session, op: Operation, target: str) -> Any:
        if target == "binding":
            return session.get(ServiceBinding, op.binding_id)
        return session.get(ServiceInstance, op.instance_id)
