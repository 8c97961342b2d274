"""Updating a service instance over OSB (PATCH): plan, parameters, maintenance, context.

Why apart from :mod:`instances`: an update has its own rules — a re-send of the running
update is recognised by a fingerprint of what it asks for and answered with its 202
again (RULES.md §2.5), only what changes goes into the operation, and nothing at all
changing is a 200 without an operation. It reads and locks the same rows as
:class:`~moorage.broker.instances.Instances`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from openbrokerapi.service_broker import UpdateServiceSpec

from moorage.broker.compliance import OsbError, async_required, bad_request, concurrency_error
from moorage.broker.driver import Driver, retry_after_for
from moorage.broker.instances import Instances, check_maintenance, validated
from moorage.broker.osb_request import UpdateRequest
from moorage.catalog.model import Offering, Plan
from moorage.ops.records import active_operation
from moorage.store.models import (
    CREATING,
    DELETING,
    FAILED,
    GONE,
    IN_PROGRESS,
    SUCCEEDED,
    UPDATE,
    Operation,
    ServiceInstance,
)

#: Key of the update request's fingerprint in an UPDATE operation's (encrypted) payload.
REQUEST_DIGEST = "request_digest"


class Updates:
    def __init__(self, instances: Instances, driver: Driver) -> None:
        self.instances = instances
        self.db = instances.db
        self.encryptor = instances.encryptor
        self.driver = driver

    def update(self, instance_id: str, req: UpdateRequest, async_allowed: bool) -> UpdateServiceSpec:
        digest = self.update_digest(req)
        with self.db.unit_of_work() as session:
            # Row-locked on PostgreSQL: concurrent mutations of one instance queue here and the
            # second sees the first's operation (422 ConcurrencyError), as BEGIN IMMEDIATE does on SQLite.
            instance = session.get(ServiceInstance, instance_id, with_for_update=True)
            resent = self._refuse_or_resent(session, instance, instance_id, req, digest, async_allowed)
            if resent is not None:
                return resent
            assert instance is not None  # refused above otherwise
            offering, current = self.instances.offering_plan(instance.service_id, instance.plan_id)
            target = self._target_plan(offering, current, instance, req)
            check_maintenance(target, req.maintenance_info)
            payload = self._changes(offering, instance, current, target, req)
            if not payload:
                return UpdateServiceSpec(False, dashboard_url=instance.dashboard_url)
            asynchronous = current.asynchronous or target.asynchronous
            if asynchronous and not async_allowed:
                raise async_required()
            payload[REQUEST_DIGEST] = digest
            started = self.driver.new_operation(
                session,
                UPDATE,
                instance,
                payload=payload,
                max_seconds=target.maximum_polling_duration,
                request_id=req.identity,
            )
        driven = self.driver.drive(started, async_allowed, inline=not asynchronous)
        if driven.state == IN_PROGRESS:
            return UpdateServiceSpec(True, operation=driven.op_id)
        if driven.state == SUCCEEDED:
            return UpdateServiceSpec(False)
        raise OsbError(
            HTTPStatus.UNPROCESSABLE_ENTITY if driven.refused else HTTPStatus.INTERNAL_SERVER_ERROR,
            f"update failed, nothing was changed: {driven.description}",
            instance_usable=True,
            update_repeatable=True,
        )

    def _refuse_or_resent(
        self,
        session: Any,
        instance: ServiceInstance | None,
        instance_id: str,
        req: UpdateRequest,
        digest: str,
        async_allowed: bool,
    ) -> UpdateServiceSpec | None:
        """Whether the instance may be updated now, read from its row and active operation.

        Raises the refusal (400 no such instance, 422 busy or failed); answers a re-send of
        the running update with its 202 again (RULES §2.5); ``None`` when the update may go on.
        """
        if instance is None or instance.status == GONE:
            raise bad_request(f"instance {instance_id} does not exist; provision it first")
        if instance.service_id != req.service_id:
            raise bad_request(f"instance {instance_id} belongs to another service than {req.service_id}")
        op = active_operation(session, instance_id)
        if op is not None and op.kind == UPDATE and async_allowed and self._same_update(op, digest):
            retry_after_for(op)
            return UpdateServiceSpec(True, operation=op.id)
        if op is not None or instance.status in (CREATING, DELETING):
            raise concurrency_error()
        if instance.status == FAILED:
            raise OsbError(
                HTTPStatus.UNPROCESSABLE_ENTITY, f"instance {instance_id} is in a failed state; delete it"
            )
        return None

    def _target_plan(
        self, offering: Offering, current: Plan, instance: ServiceInstance, req: UpdateRequest
    ) -> Plan:
        """The plan after the update: the current one unless another is asked for and the
        current plan allows the change (422 otherwise)."""
        if not req.plan_id or req.plan_id == instance.plan_id:
            return current
        target = self.instances.offering_plan(instance.service_id, req.plan_id)[1]
        if not offering.is_plan_updateable(current):
            raise OsbError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"plan {current.name!r} of {offering.name!r} cannot be changed to another plan",
            )
        return target

    def _changes(
        self, offering: Offering, instance: ServiceInstance, current: Plan, target: Plan, req: UpdateRequest
    ) -> dict[str, Any]:
        """What the update changes (the UPDATE operation's payload); empty when nothing does,
        which is answered 200 without starting an operation."""
        payload: dict[str, Any] = {}
        if target is not current:
            payload["plan_id"] = target.id
        if req.parameters is not None:
            old_params = self.encryptor.decrypt_json(instance.parameters_enc)
            validated(target, "service_instance", "update", req.parameters)
            # What was given, over what is: a parameter left out keeps its value (no defaults).
            new_params = {**old_params, **req.parameters}
            if new_params != old_params:
                payload["parameters"] = new_params
        info = req.maintenance_info
        if info and info.get("version") != instance.maintenance_version:
            payload["maintenance_version"] = info["version"]
        context = req.context
        if context and offering.allow_context_updates and context != instance.context:
            payload["context"] = context
        return payload

    def update_digest(self, req: UpdateRequest) -> str:
        """A keyed fingerprint of what a PATCH asks for, to recognise it when re-sent.

        ``previous_values`` is left out: it describes the instance, not the change.
        """
        return self.encryptor.fingerprint(
            [req.service_id, req.plan_id, req.parameters, req.maintenance_info, req.context]
        )

    def _same_update(self, op: Operation, digest: str) -> bool:
        payload = self.encryptor.decrypt_json(op.payload_enc)
        return isinstance(payload, dict) and payload.get(REQUEST_DIGEST) == digest
