"""Service bindings over OSB: bind, unbind, fetch, last_operation.

Why bindings have their own operations: every binding gets its own credentials, and
binds of one instance must run side by side (fifty apps binding one database at once
is normal). So the one-active-operation rule is per binding, not per instance; only
instance-level changes (update, deprovision) exclude each other.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import g
from openbrokerapi.service_broker import Binding as BindingSpec
from openbrokerapi.service_broker import BindState, GetBindingSpec, LastOperation, UnbindSpec
from sqlalchemy.exc import IntegrityError

from moorage.broker.compliance import OsbError, async_required, bad_request, concurrency_error
from moorage.broker.driver import Driver, retry_after_for
from moorage.broker.instances import Instances, describe, validated, visible
from moorage.broker.osb_request import BindRequest, DeleteRequest
from moorage.ops.records import active_operation
from moorage.store.models import (
    BIND,
    CREATING,
    DELETING,
    FAILED,
    GONE,
    IN_PROGRESS,
    OP_FAILED,
    READY,
    SUCCEEDED,
    UNBIND,
    ServiceBinding,
    ServiceInstance,
)


class Bindings:
    def __init__(self, instances: Instances, driver: Driver) -> None:
        self.instances = instances
        self.db = instances.db
        self.encryptor = instances.encryptor
        self.driver = driver

    def bind(self, instance_id: str, binding_id: str, req: BindRequest, async_allowed: bool) -> BindingSpec:
        offering, plan = self.instances.offering_plan(req.service_id, req.plan_id)
        if not offering.is_bindable(plan):
            raise bad_request(f"plan {plan.name!r} of {offering.name!r} is not bindable")
        predecessor = req.predecessor_binding_id
        if predecessor is not None and not plan.binding_rotatable:
            raise bad_request(
                f"plan {plan.name!r} does not support binding rotation (predecessor_binding_id)"
            )
        given = req.parameters or {}
        merged = validated(plan, "service_binding", "create", given)
        if plan.asynchronous and not async_allowed:
            raise async_required()
        bind_resource = req.bind_resource or {}
        app_guid = bind_resource.get("app_guid") or req.app_guid
        fingerprint = self.encryptor.fingerprint(
            [req.service_id, req.plan_id, app_guid, bind_resource, given, predecessor]
        )
        try:
            with self.db.unit_of_work() as session:
                # Locked on PostgreSQL so a deprovision cannot slip between this check and the insert.
                instance = session.get(ServiceInstance, instance_id, with_for_update=True)
                _check_target(session, instance, instance_id, req)
                binding = session.get(ServiceBinding, binding_id)
                if binding is not None and binding.status != GONE:
                    return self._existing(session, binding, instance_id, fingerprint, async_allowed)
                if binding is not None and binding.instance_id != instance_id:
                    raise OsbError(
                        HTTPStatus.CONFLICT, f"binding id {binding_id} was used for another instance"
                    )
                if binding is None:
                    binding = ServiceBinding(id=binding_id, instance_id=instance_id)
                    session.add(binding)
                binding.service_id = req.service_id
                binding.plan_id = req.plan_id
                binding.app_guid = app_guid
                binding.bind_resource = bind_resource
                binding.context = req.context or {}
                binding.request_digest = fingerprint
                binding.parameters_enc = self.encryptor.encrypt_json(merged)
                binding.outputs_enc = binding.credentials_enc = None
                binding.endpoints = []
                binding.status = CREATING
                started = self.driver.new_operation(
                    session,
                    BIND,
                    instance,
                    binding,
                    max_seconds=plan.maximum_polling_duration,
                    request_id=req.identity,
                )
        except IntegrityError:  # a concurrent PUT with the same id won the race
            with self.db.unit_of_work() as session:
                binding = session.get(ServiceBinding, binding_id)
                assert binding is not None
                return self._existing(session, binding, instance_id, fingerprint, async_allowed)
        return self._answer(
            binding_id, self.driver.drive(started, async_allowed, inline=not plan.asynchronous)
        )

    def _answer(self, binding_id: str, driven: Any) -> BindingSpec:
        """What PUT binding answers once its first step ran: 202, 201 with credentials, or 500."""
        if driven.state == IN_PROGRESS:
            return BindingSpec(BindState.IS_ASYNC, operation=driven.op_id)
        if driven.state == SUCCEEDED and driven.result is not None:
            endpoints = [e.to_osb() for e in driven.result.endpoints]
            g.extra_json = {"endpoints": endpoints} if endpoints else {}
            return BindingSpec(BindState.SUCCESSFUL_BOUND, credentials=dict(driven.result.credentials))
        if driven.state == SUCCEEDED:  # finished by a worker that took the operation over
            return self._ready_answer(binding_id, BindState.SUCCESSFUL_BOUND)
        # 500, not 422, even when the provider refused: a provider may refuse after it made
        # part of the binding, and by OSB a platform cleans up (DELETE) only after a 5xx.
        raise OsbError(HTTPStatus.INTERNAL_SERVER_ERROR, f"binding failed: {driven.description}")

    def _existing(
        self, session: Any, binding: ServiceBinding, instance_id: str, fingerprint: str, async_allowed: bool
    ) -> BindingSpec:
        if binding.instance_id != instance_id or binding.request_digest != fingerprint:
            raise OsbError(HTTPStatus.CONFLICT, f"binding {binding.id} already exists with other attributes")
        op = active_operation(session, instance_id, binding.id)
        if binding.status == READY and op is None:
            return self._ready_answer(binding.id, BindState.IDENTICAL_ALREADY_EXISTS)
        if op is not None and op.kind == BIND:
            if not async_allowed:
                raise concurrency_error()
            retry_after_for(op)
            return BindingSpec(BindState.IS_ASYNC, operation=op.id)
        if binding.status == FAILED and op is None:
            raise OsbError(
                HTTPStatus.CONFLICT, f"binding {binding.id} exists but failed; unbind it, then bind again"
            )
        raise concurrency_error()

    def _ready_answer(self, binding_id: str, state: BindState) -> BindingSpec:
        with self.db.sessions() as session:
            binding = session.get(ServiceBinding, binding_id)
            assert binding is not None
            credentials = self.encryptor.decrypt_json(binding.credentials_enc)
            self._extras(binding)
        return BindingSpec(state, credentials=credentials)

    def _extras(self, binding: ServiceBinding) -> None:
        extra: dict[str, Any] = {}
        if binding.endpoints:
            extra["endpoints"] = binding.endpoints
        if binding.metadata_:
            extra["metadata"] = binding.metadata_
        g.extra_json = extra

    def unbind(
        self, instance_id: str, binding_id: str, req: DeleteRequest, async_allowed: bool
    ) -> UnbindSpec:
        with self.db.unit_of_work() as session:
            binding = session.get(ServiceBinding, binding_id, with_for_update=True)  # see Instances.update
            if binding is None or binding.status == GONE or binding.instance_id != instance_id:
                raise OsbError(HTTPStatus.GONE, "")
            _, plan = self.instances.offering_plan(binding.service_id, binding.plan_id)
            op = active_operation(session, instance_id, binding_id)
            if op is not None and op.kind == UNBIND:
                if not async_allowed:
                    raise concurrency_error()
                retry_after_for(op)
                return UnbindSpec(True, op.id)
            if op is not None:  # a bind still running: halt it, then remove what exists
                op.state = OP_FAILED
                op.description = "cancelled: the binding was deleted while it was being created"
            if plan.asynchronous and not async_allowed:
                raise async_required()
            status_before = binding.status if binding.status != CREATING else FAILED
            binding.status = DELETING
            instance = session.get(ServiceInstance, instance_id)
            assert instance is not None  # bindings are deleted with their instance
            started = self.driver.new_operation(
                session,
                UNBIND,
                instance,
                binding,
                payload={"status_before": status_before},
                request_id=req.identity,
            )
        driven = self.driver.drive(started, async_allowed, inline=not plan.asynchronous)
        if driven.state == IN_PROGRESS:
            return UnbindSpec(True, driven.op_id)
        if driven.state == SUCCEEDED:
            return UnbindSpec(False)
        raise OsbError(
            HTTPStatus.UNPROCESSABLE_ENTITY if driven.refused else HTTPStatus.INTERNAL_SERVER_ERROR,
            f"unbinding failed: {driven.description}",
        )

    def get(self, instance_id: str, binding_id: str) -> GetBindingSpec:
        with self.db.sessions() as session:
            binding = session.get(ServiceBinding, binding_id)
            if binding is None or binding.instance_id != instance_id or binding.status != READY:
                raise OsbError(
                    HTTPStatus.NOT_FOUND, f"binding {binding_id} does not exist or is not ready yet"
                )
            credentials = self.encryptor.decrypt_json(binding.credentials_enc)
            _, plan = self.instances.offering_plan(binding.service_id, binding.plan_id)
            parameters = visible(plan, self.encryptor.decrypt_json(binding.parameters_enc), "service_binding")
            self._extras(binding)
        return GetBindingSpec(credentials=credentials, parameters=parameters or None)

    def last_operation(self, instance_id: str, binding_id: str, operation: str | None) -> LastOperation:
        with self.db.sessions() as session:
            binding = session.get(ServiceBinding, binding_id)
            if binding is None or binding.instance_id != instance_id:
                raise OsbError(HTTPStatus.NOT_FOUND, f"binding {binding_id} does not exist")
            op = self.instances._find_operation(session, instance_id, binding_id, operation)
            if op.kind == UNBIND and op.state == SUCCEEDED and binding.status == GONE:
                raise OsbError(HTTPStatus.GONE, f"binding {binding_id} has been deleted")
            return describe(op)


def _check_target(
    session: Any,
    instance: ServiceInstance | None,
    instance_id: str,
    req: BindRequest,
) -> None:
    """Refuse a bind to an instance that is not ready, is another offering's or plan's, or
    names a predecessor that is not a ready binding of it (OSB: 400, or 422 while deleting)."""
    if instance is None or instance.status in (GONE, CREATING, FAILED):
        raise bad_request(
            f"instance {instance_id} does not exist or is not ready; bind after it is provisioned"
        )
    if instance.status == DELETING:
        raise concurrency_error()
    if instance.service_id != req.service_id or instance.plan_id != req.plan_id:
        raise bad_request("service_id and plan_id must be those of the instance")
    predecessor = req.predecessor_binding_id
    if predecessor is not None:
        old = session.get(ServiceBinding, predecessor)
        if old is None or old.instance_id != instance_id or old.status != READY:
            raise bad_request(f"predecessor binding {predecessor} is not a ready binding of this instance")
