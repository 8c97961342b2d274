"""Starting an operation inside a request and deciding between 200/201 and 202.

Why here and not in the engine: how long a request may wait, and what a sync-only
platform (no ``accepts_incomplete``) is told when a step cannot finish, are OSB-API
decisions. The engine only knows how to run one step.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from flask import g
from sqlalchemy.orm import Session

from moorage.broker.compliance import OsbError
from moorage.ops.engine import OperationEngine, Prepared
from moorage.ops.worker import Worker
from moorage.store.base import utcnow
from moorage.store.models import (
    IN_PROGRESS,
    OP_FAILED,
    SUCCEEDED,
    Operation,
    ServiceBinding,
    ServiceInstance,
)


@dataclass(frozen=True)
class Driven:
    op_id: str
    state: str
    description: str
    #: A refusal by the backend (nothing broke), as opposed to a breakdown.
    refused: bool = False
    #: What the provider returned when it finished within the request.
    result: Any = None


class Driver:
    def __init__(self, engine: OperationEngine, worker: Worker | None, sync_budget: float) -> None:
        self.engine = engine
        self.worker = worker
        self.sync_budget = sync_budget

    def new_operation(
        self,
        session: Session,
        kind: str,
        instance: ServiceInstance,
        binding: ServiceBinding | None = None,
        payload: Any = None,
        max_seconds: int | None = None,
        request_id: str | None = None,
    ) -> Prepared:
        """Add an operation row already leased to this process, so no worker races us to it.

        ``request_id`` is the platform's X-Broker-API-Request-Identity, kept on the row
        to tie the operation to the request that started it. What comes back carries the rows the first step needs, so :meth:`drive` runs it
        without reading them again.
        """
        now = utcnow()
        op = Operation(
            id=uuid.uuid4().hex,
            instance_id=instance.id,
            binding_id=binding.id if binding is not None else None,
            kind=kind,
            state=IN_PROGRESS,
            description=f"{kind} requested",
            payload_enc=self.engine.encryptor.encrypt_json(payload) if payload is not None else None,
            attempts=0,
            run_at=now,
            lease_owner=self.engine.owner,
            lease_until=now + dt.timedelta(seconds=self.engine.settings.worker.lease_seconds),
            deadline=now + dt.timedelta(seconds=max_seconds) if max_seconds else None,
            request_id=request_id,
        )
        session.add(op)
        return self.engine.prepared(session, op, instance, binding)

    def drive(self, started: Prepared, async_allowed: bool, inline: bool = True) -> Driven:
        """Run steps now. With ``async_allowed`` one step, then hand over to the worker.

        ``inline=False`` (plans marked asynchronous) hands over at once: the answer is
        202 without waiting for even a first backend call.
        """
        op_id = started.op.id
        if async_allowed and not inline:
            self.engine.release(op_id)
            self._wake()
            set_retry_after(1)
            return Driven(op_id, IN_PROGRESS, "queued")
        self.engine.hold(op_id)
        deadline = time.monotonic() + self.sync_budget
        prepared: Prepared | None = started
        while True:
            outcome = self.engine.run_step(op_id, prepared)
            prepared = None  # later steps read the operation afresh (checkpoints, retries)
            if outcome.state != IN_PROGRESS:
                return Driven(op_id, outcome.state, outcome.description, outcome.refused, outcome.result)
            if async_allowed:
                set_retry_after(outcome.retry_in)
                self._wake()
                return Driven(op_id, IN_PROGRESS, outcome.description)
            if time.monotonic() + outcome.retry_in > deadline:
                self.engine.fail(
                    op_id, f"did not finish within {self.sync_budget:.0f} s: {outcome.description}"
                )
                raise OsbError(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    f"the operation did not finish within {self.sync_budget:.0f} s ({outcome.description}); "
                    "retry with accepts_incomplete=true",
                )
            time.sleep(outcome.retry_in)  # the provider asked for this pause before its next step
            if not self.engine.claim(op_id):
                return self._await(op_id, deadline)

    def _wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    def _await(self, op_id: str, deadline: float) -> Driven:
        """Someone else (a worker) took the operation over: wait for its end within budget."""
        while time.monotonic() < deadline:
            with self.engine.db.sessions() as session:
                op = session.get(Operation, op_id)
                if op is not None and op.state != IN_PROGRESS:
                    return Driven(op_id, op.state, op.description or "")
            time.sleep(0.05)
        self.engine.fail(
            op_id, f"did not finish within {self.sync_budget:.0f} s"
        )  # a 5xx changes nothing later
        raise OsbError(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            f"the operation did not finish within {self.sync_budget:.0f} s; retry with accepts_incomplete=true",
        )


def set_retry_after(seconds: float) -> None:
    g.retry_after = max(1, math.ceil(seconds))


def retry_after_for(op: Operation) -> None:
    set_retry_after((op.run_at - utcnow()).total_seconds())


__all__ = ["OP_FAILED", "SUCCEEDED", "Driven", "Driver", "retry_after_for", "set_retry_after"]
