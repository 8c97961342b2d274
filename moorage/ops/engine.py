"""Running one durable operation step: claim, call the provider, record the outcome.

Why this shape (record first, then act): the broker writes the resource row and its
operation before any backend call, so a process killed at any point leaves a row that
says what was wanted. Whoever runs a step first *claims* the operation with a lease
(compare-and-set on ``lease_owner``/``lease_until``), calls the provider outside any
database transaction, and writes the result only if it still holds the lease. A dead
runner's lease expires and another takes over; providers are idempotent, so calling
them again is safe.

Outcomes of a provider call:

- returns → the operation ``succeeded`` and the resource takes its new state;
- ``TemporaryError`` → not done yet: checkpointed outputs are saved and the step is
  rescheduled after ``delay`` (no attempt is counted);
- ``PermanentError`` or another ``moorage.errors.Error`` → ``failed`` with its message;
- anything else (``ProviderError``, a bug, a network error) → retried with exponential
  backoff, then ``failed`` with a description a user can act on.

Writing those outcomes down is :mod:`moorage.ops.outcomes`.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from moorage.catalog.model import Catalog, Offering, Plan
from moorage.catalog.provider import BindingContext, InstanceContext
from moorage.catalog.registry import ProviderRegistry
from moorage.errors import Error, PermanentError, ProviderError, TemporaryError
from moorage.ops.outcomes import Outcomes, StepOutcome
from moorage.settings import Settings
from moorage.store.base import utcnow
from moorage.store.db import Database
from moorage.store.encryptor import Encryptor
from moorage.store.models import (
    BIND,
    DEPROVISION,
    IN_PROGRESS,
    OP_FAILED,
    PROVISION,
    UNBIND,
    UPDATE,
    Operation,
    ServiceBinding,
    ServiceInstance,
)

log = logging.getLogger(__name__)


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Prepared:
    """An operation with the rows its step works on, read (or just written) together."""

    op: Operation
    instance: ServiceInstance
    binding: ServiceBinding | None
    #: A cancelled operation on the same resource is still inside a provider call.
    waits_for_cancelled: bool = False


class OperationEngine:
    """Runs steps of operations; shared by request threads and worker threads."""

    def __init__(
        self,
        db: Database,
        encryptor: Encryptor,
        catalog: Catalog,
        providers: ProviderRegistry,
        settings: Settings,
    ) -> None:
        self.db = db
        self.encryptor = encryptor
        self.catalog = catalog
        self.providers = providers
        self.settings = settings
        self.owner = new_owner_id()
        self.outcomes = Outcomes(db, encryptor, self.owner, settings)
        self._held: set[str] = set()
        self._held_lock = threading.Lock()

    # -- claiming -----------------------------------------------------------------

    def claim(self, op_id: str) -> bool:
        """Take the lease of ``op_id`` if it is free or expired. True when we hold it."""
        now = utcnow()
        with self.db.unit_of_work() as session:
            result = session.execute(
                update(Operation)
                .where(
                    Operation.id == op_id,
                    Operation.state == IN_PROGRESS,
                    or_(Operation.lease_owner.is_(None), Operation.lease_until < now),
                )
                .values(lease_owner=self.owner, lease_until=now + self._lease())
                .execution_options(synchronize_session=False)
            )
            claimed = result.rowcount == 1
        if claimed:
            with self._held_lock:
                self._held.add(op_id)
        return claimed

    def claim_next(self) -> str | None:
        """Claim the oldest operation that is due and not held by a live runner."""
        now = utcnow()
        with self.db.sessions() as session:
            query = (
                select(Operation.id)
                .where(
                    Operation.state == IN_PROGRESS,
                    Operation.run_at <= now,
                    or_(Operation.lease_owner.is_(None), Operation.lease_until < now),
                )
                .order_by(Operation.run_at)
                .limit(8)
            )
            candidates = list(session.scalars(query))
        for op_id in candidates:
            if self.claim(op_id):
                return op_id
        return None

    def hold(self, op_id: str) -> None:
        """Track an operation created already leased to us (see ``Driver.new_operation``)."""
        with self._held_lock:
            self._held.add(op_id)

    def fail(self, op_id: str, description: str) -> None:
        """Fail an operation from outside a step (a request gave up on it)."""
        self.outcomes.finish(op_id, OP_FAILED, description)

    def release(self, op_id: str) -> None:
        with self._held_lock:
            self._held.discard(op_id)
        with self.db.unit_of_work() as session:
            session.execute(
                update(Operation)
                .where(Operation.id == op_id, Operation.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def renew_leases(self) -> None:
        """Extend the leases of every operation this process is running right now."""
        with self._held_lock:
            held = list(self._held)
        if not held:
            return
        with self.db.unit_of_work() as session:
            session.execute(
                update(Operation)
                .where(Operation.id.in_(held), Operation.lease_owner == self.owner)
                .values(lease_until=utcnow() + self._lease())
                .execution_options(synchronize_session=False)
            )

    def _lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.worker.lease_seconds)

    # -- running --------------------------------------------------------------------

    def prepared(
        self,
        session: Session,
        op: Operation,
        instance: ServiceInstance,
        binding: ServiceBinding | None = None,
    ) -> Prepared:
        """Capture an operation in the transaction that creates it, for :meth:`run_step`.

        Why: the request that records an operation has just read (or written) the rows
        its first step needs; handing them over saves the step a read transaction. The
        session must keep its objects loaded after commit (``expire_on_commit=False``).
        """
        waits = False
        if op.kind in (DEPROVISION, UNBIND):
            session.flush()
            waits = self._other_runner_active(session, op)
        return Prepared(op, instance, binding, waits)

    def run_step(self, op_id: str, prepared: Prepared | None = None) -> StepOutcome:
        """Run one provider call for an operation we hold; the lease is given back with the outcome."""
        try:
            return self._run_step(op_id, prepared)
        finally:
            with self._held_lock:
                self._held.discard(op_id)

    def _load(self, op_id: str) -> Prepared | StepOutcome:
        with self.db.sessions() as session:
            op = session.get(Operation, op_id)
            if op is None or op.state != IN_PROGRESS:
                return StepOutcome(op.state if op else OP_FAILED)
            instance = session.get(ServiceInstance, op.instance_id)
            binding = session.get(ServiceBinding, op.binding_id) if op.binding_id else None
            if instance is None or (op.binding_id and binding is None):
                return self.outcomes.finish(
                    op_id, OP_FAILED, "the resource of this operation no longer exists"
                )
            waits = op.kind in (DEPROVISION, UNBIND) and self._other_runner_active(session, op)
            return Prepared(op, instance, binding, waits)

    def _run_step(self, op_id: str, prepared: Prepared | None) -> StepOutcome:
        loaded = prepared or self._load(op_id)
        if isinstance(loaded, StepOutcome):
            return loaded
        op = loaded.op
        # Past its deadline, an operation still gets this one call: the provider may be
        # done, or may explain the delay with the backend's reason (it sees the deadline
        # too); only "not done yet" or an error then fails it.
        expired = op.deadline is not None and utcnow() > op.deadline
        if loaded.waits_for_cancelled:
            if expired:
                return self.outcomes.too_late(op, "waiting for a cancelled operation to stop")
            return self.outcomes.reschedule(op_id, 1.0, "waiting for a cancelled operation to stop")
        try:
            call, target = self._prepare(op, loaded.instance, loaded.binding)
        except Error as exc:
            return self.outcomes.finish(op_id, OP_FAILED, str(exc))
        extra = {"operation": op_id, "instance": op.instance_id, "binding": op.binding_id, "kind": op.kind}
        try:
            result = call()
        except TemporaryError as exc:
            if expired:  # keep what it checkpointed (ids of what it created) for the delete
                return self.outcomes.too_late(op, exc.message, exc.outputs, target)
            log.info("operation waits %.1fs: %s", exc.delay, exc.message, extra=extra)
            return self.outcomes.reschedule(
                op_id, exc.delay, exc.message, checkpoint=exc.outputs, target=target
            )
        except PermanentError as exc:
            log.warning("operation failed: %s", exc.message, extra=extra)
            return self.outcomes.finish(op_id, OP_FAILED, exc.message, refused=True)
        except ProviderError as exc:
            if expired:
                return self.outcomes.too_late(op, exc.message)
            return self.outcomes.retry(op_id, exc.message, extra)
        except Error as exc:
            log.warning("operation failed: %s", exc.message, extra=extra)
            return self.outcomes.finish(op_id, OP_FAILED, exc.message, refused=True)
        except Exception as exc:  # a bug or an untranslated failure: retried, then reported
            log.exception("operation step raised %s", type(exc).__name__, extra=extra)
            message = f"internal error ({type(exc).__name__}); see the broker log"
            return (
                self.outcomes.too_late(op, message) if expired else self.outcomes.retry(op_id, message, extra)
            )
        return self.outcomes.succeed(op, result)

    def _other_runner_active(self, session: Session, op: Operation) -> bool:
        """A cancelled operation on the same resource whose runner is still inside a provider call."""
        query = select(Operation.id).where(
            Operation.instance_id == op.instance_id,
            Operation.id != op.id,
            Operation.lease_owner.is_not(None),
            Operation.lease_until > utcnow(),
        )
        if op.binding_id:
            query = query.where(Operation.binding_id == op.binding_id)
        return session.scalar(query.limit(1)) is not None

    def _prepare(
        self, op: Operation, instance: ServiceInstance, binding: ServiceBinding | None
    ) -> tuple[Any, str]:
        offering, plan = self.resolve(instance.service_id, instance.plan_id)
        provider = self.providers.get(offering.provider)
        params = self.encryptor.decrypt_json(instance.parameters_enc)
        outputs = self.encryptor.decrypt_json(instance.outputs_enc)
        ictx = InstanceContext(
            instance_id=instance.id,
            offering=offering,
            plan=plan,
            parameters=params,
            outputs=outputs,
            settings=self.settings,
            context=instance.context or {},
            deadline=op.deadline.timestamp() if op.deadline else None,
        )
        if op.kind == PROVISION:
            return (lambda: provider.provision(ictx)), "instance"
        if op.kind == DEPROVISION:
            return (lambda: provider.deprovision(ictx)), "instance"
        if op.kind == UPDATE:
            payload = self.encryptor.decrypt_json(op.payload_enc)
            _, new_plan = self.resolve(instance.service_id, payload.get("plan_id") or instance.plan_id)
            uctx = InstanceContext(
                instance_id=instance.id,
                offering=offering,
                plan=new_plan,
                parameters=payload.get("parameters", params),
                outputs=outputs,
                settings=self.settings,
                context=payload.get("context") or instance.context or {},
                previous_plan=plan,
                deadline=ictx.deadline,
            )
            return (lambda: provider.update(uctx)), "instance"
        assert binding is not None
        bctx = BindingContext(
            binding_id=binding.id,
            instance=ictx,
            parameters=self.encryptor.decrypt_json(binding.parameters_enc),
            outputs=self.encryptor.decrypt_json(binding.outputs_enc),
            bind_resource=binding.bind_resource or {},
        )
        if op.kind == BIND:
            return (lambda: provider.bind(bctx)), "binding"
        if op.kind == UNBIND:
            return (lambda: provider.unbind(bctx)), "binding"
        raise PermanentError(f"unknown operation kind {op.kind!r}")

    def resolve(self, service_id: str, plan_id: str) -> tuple[Offering, Plan]:
        offering = self.catalog.offering(service_id)
        plan = offering.plan(plan_id) if offering else None
        if offering is None or plan is None:
            raise PermanentError(
                f"offering {service_id} / plan {plan_id} is no longer in the catalog; restore its file to manage this resource"
            )
        return offering, plan
