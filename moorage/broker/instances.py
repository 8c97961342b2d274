"""Service instances over OSB: provision, update, deprovision, fetch, last_operation.

Why the status table below is spelled out: OSB gives re-sent and concurrent requests
precise answers (RULES.md §2.5, §2.6), and platforms rely on them for retries and orphan
mitigation. Each method reads the row and its active operation in one transaction and
answers from this table; only then does it start work.

======================  ==========================================================
PUT, no row / gone      create row + operation → 201 (finished) or 202
PUT, same attributes    ready → 200; creating → 202 (same operation); failed → retry
PUT, other attributes   409
DELETE, no row / gone   410
DELETE while creating   the provision is cancelled, deprovision starts (halts creation)
DELETE with bindings    400: unbind first
PATCH while busy        422 ConcurrencyError
PATCH re-sent, running  202 (same operation) with accepts_incomplete; without it 422
GET while creating      404; while updating 422 ConcurrencyError
======================  ==========================================================

The PATCH rows are answered by :mod:`updates`, which works on the same rows.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import g
from openbrokerapi.service_broker import (
    DeprovisionServiceSpec,
    GetInstanceDetailsSpec,
    LastOperation,
    OperationState,
    ProvisionedServiceSpec,
    ProvisionState,
)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from moorage.broker.compliance import OsbError, async_required, bad_request, catalog_entry, concurrency_error
from moorage.broker.driver import Driven, Driver, retry_after_for
from moorage.broker.osb_request import DeleteRequest, ProvisionRequest
from moorage.catalog import parameters as params
from moorage.catalog.model import Catalog, Offering, Plan
from moorage.errors import InvalidParametersError
from moorage.ops.records import active_operation, latest_operation
from moorage.store.db import Database
from moorage.store.encryptor import Encryptor
from moorage.store.models import (
    CREATING,
    DELETING,
    DEPROVISION,
    FAILED,
    GONE,
    IN_PROGRESS,
    OP_FAILED,
    PROVISION,
    READY,
    SUCCEEDED,
    UPDATE,
    Operation,
    ServiceBinding,
    ServiceInstance,
)

STATES = {
    IN_PROGRESS: OperationState.IN_PROGRESS,
    SUCCEEDED: OperationState.SUCCEEDED,
    OP_FAILED: OperationState.FAILED,
}


def check_maintenance(plan: Plan, info: dict[str, Any] | None) -> None:
    """422 MaintenanceInfoConflict when the platform asks for another version than the plan's."""
    if info is None:
        return
    if plan.maintenance_version is None or info.get("version") != plan.maintenance_version:
        current = plan.maintenance_version or "none (the plan has no maintenance_info)"
        raise OsbError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"maintenance_info.version {info.get('version')!r} does not match the plan's current version {current}; "
            "fetch the catalog again",
            "MaintenanceInfoConflict",
        )


def validated(plan: Plan, resource: str, action: str, given: Any) -> dict[str, Any]:
    try:
        return params.validate(plan, resource, action, given)
    except InvalidParametersError as exc:
        raise bad_request(str(exc)) from None


class Instances:
    def __init__(self, catalog: Catalog, db: Database, encryptor: Encryptor, driver: Driver) -> None:
        self.catalog = catalog
        self.db = db
        self.encryptor = encryptor
        self.driver = driver

    def offering_plan(self, service_id: str, plan_id: str) -> tuple[Offering, Plan]:
        offering, plan = catalog_entry(self.catalog, service_id, plan_id)
        assert plan is not None  # a plan_id was given
        return offering, plan

    # -- provision ---------------------------------------------------------------

    def provision(
        self, instance_id: str, req: ProvisionRequest, async_allowed: bool
    ) -> ProvisionedServiceSpec:
        offering, plan = self.offering_plan(req.service_id, req.plan_id)
        check_maintenance(plan, req.maintenance_info)
        given = req.parameters or {}
        merged = validated(plan, "service_instance", "create", given)
        if plan.asynchronous and not async_allowed:
            raise async_required()
        fingerprint = self.encryptor.fingerprint(
            [req.service_id, req.plan_id, req.organization_guid, req.space_guid, given]
        )
        try:
            with self.db.unit_of_work() as session:
                instance = session.get(ServiceInstance, instance_id)
                if instance is not None and instance.status != GONE:
                    return self._existing(session, instance, fingerprint, async_allowed)
                if instance is None:
                    instance = ServiceInstance(id=instance_id)
                    session.add(instance)
                instance.service_id = offering.id
                instance.plan_id = plan.id
                instance.organization_guid = req.organization_guid
                instance.space_guid = req.space_guid
                instance.context = req.context or {}
                instance.request_digest = fingerprint
                instance.parameters_enc = self.encryptor.encrypt_json(merged)
                instance.outputs_enc = None
                instance.dashboard_url = None
                instance.maintenance_version = plan.maintenance_version
                instance.status = CREATING
                started = self.driver.new_operation(
                    session,
                    PROVISION,
                    instance,
                    max_seconds=plan.maximum_polling_duration,
                    request_id=req.identity,
                )
        except IntegrityError:  # a concurrent PUT with the same id won the race
            with self.db.unit_of_work() as session:
                instance = session.get(ServiceInstance, instance_id)
                assert instance is not None
                return self._existing(session, instance, fingerprint, async_allowed)
        driven = self.driver.drive(started, async_allowed, inline=not plan.asynchronous)
        return self._provision_answer(instance_id, driven)

    def _existing(
        self, session: Any, instance: ServiceInstance, fingerprint: str, async_allowed: bool
    ) -> Any:
        if instance.request_digest != fingerprint:
            raise OsbError(
                HTTPStatus.CONFLICT, f"instance {instance.id} already exists with other attributes"
            )
        op = active_operation(session, instance.id)
        if instance.status == READY and op is None:
            return ProvisionedServiceSpec(ProvisionState.IDENTICAL_ALREADY_EXISTS, instance.dashboard_url)
        if op is not None and op.kind == PROVISION:
            if not async_allowed:
                raise concurrency_error()
            retry_after_for(op)
            return ProvisionedServiceSpec(ProvisionState.IS_ASYNC, instance.dashboard_url, op.id)
        if instance.status == FAILED and op is None:
            raise OsbError(
                HTTPStatus.CONFLICT,
                f"instance {instance.id} exists but failed to provision; delete it, then provision again",
            )
        raise concurrency_error()

    def _provision_answer(self, instance_id: str, driven: Driven) -> ProvisionedServiceSpec:
        if driven.result is not None:  # finished within this request: the provider's answer
            dashboard = driven.result.dashboard_url
        else:
            with self.db.sessions() as session:
                instance = session.get(ServiceInstance, instance_id)
                dashboard = instance.dashboard_url if instance else None
        if driven.state == IN_PROGRESS:
            return ProvisionedServiceSpec(ProvisionState.IS_ASYNC, dashboard, driven.op_id)
        if driven.state == SUCCEEDED:
            return ProvisionedServiceSpec(ProvisionState.SUCCESSFUL_CREATED, dashboard, driven.op_id)
        raise OsbError(HTTPStatus.INTERNAL_SERVER_ERROR, f"provisioning failed: {driven.description}")

    # -- deprovision -------------------------------------------------------------

    def deprovision(
        self, instance_id: str, req: DeleteRequest, async_allowed: bool
    ) -> DeprovisionServiceSpec:
        with self.db.unit_of_work() as session:
            instance = session.get(ServiceInstance, instance_id, with_for_update=True)  # see update()
            if instance is None or instance.status == GONE:
                raise OsbError(HTTPStatus.GONE, "")
            offering, plan = self.offering_plan(instance.service_id, instance.plan_id)
            bound = session.scalar(
                select(func.count())
                .select_from(ServiceBinding)
                .where(ServiceBinding.instance_id == instance_id, ServiceBinding.status != GONE)
            )
            if bound:
                raise bad_request(f"instance {instance_id} still has {bound} binding(s); unbind them first")
            op = active_operation(session, instance_id)
            if op is not None and op.kind == DEPROVISION:
                if not async_allowed:
                    raise concurrency_error()
                retry_after_for(op)
                return DeprovisionServiceSpec(True, op.id)
            if op is not None and op.kind == PROVISION:
                # Deleting while creating halts creation: cancel, then clean up what exists.
                op.state = OP_FAILED
                op.description = "cancelled: the instance was deleted while it was being created"
            elif op is not None:
                raise concurrency_error()
            if plan.asynchronous and not async_allowed:
                raise async_required()
            status_before = instance.status if instance.status != CREATING else FAILED
            instance.status = DELETING
            started = self.driver.new_operation(
                session,
                DEPROVISION,
                instance,
                payload={"status_before": status_before},
                max_seconds=plan.maximum_polling_duration,
                request_id=req.identity,
            )
        driven = self.driver.drive(started, async_allowed, inline=not plan.asynchronous)
        if driven.state == IN_PROGRESS:
            return DeprovisionServiceSpec(True, driven.op_id)
        if driven.state == SUCCEEDED:
            return DeprovisionServiceSpec(False)
        raise OsbError(
            HTTPStatus.UNPROCESSABLE_ENTITY if driven.refused else HTTPStatus.INTERNAL_SERVER_ERROR,
            f"deprovisioning failed: {driven.description}",
            instance_usable=status_before == READY,
        )

    # -- reads ---------------------------------------------------------------------

    def get(self, instance_id: str) -> GetInstanceDetailsSpec:
        with self.db.sessions() as session:
            instance = session.get(ServiceInstance, instance_id)
            if instance is None or instance.status in (GONE, CREATING, FAILED):
                raise OsbError(
                    HTTPStatus.NOT_FOUND, f"instance {instance_id} does not exist or is not ready yet"
                )
            op = active_operation(session, instance_id)
            if op is not None and op.kind == UPDATE:
                raise concurrency_error()
            _, plan = self.offering_plan(instance.service_id, instance.plan_id)
            parameters = visible(plan, self.encryptor.decrypt_json(instance.parameters_enc))
            extra: dict[str, Any] = {}
            if instance.maintenance_version:
                extra["maintenance_info"] = {"version": instance.maintenance_version}
            g.extra_json = extra
            return GetInstanceDetailsSpec(
                instance.service_id, instance.plan_id, instance.dashboard_url, parameters or None
            )

    def last_operation(self, instance_id: str, operation: str | None) -> LastOperation:
        with self.db.sessions() as session:
            instance = session.get(ServiceInstance, instance_id)
            if instance is None:
                raise OsbError(HTTPStatus.NOT_FOUND, f"instance {instance_id} does not exist")
            op = self._find_operation(session, instance_id, None, operation)
            if op.kind == DEPROVISION and op.state == SUCCEEDED and instance.status == GONE:
                raise OsbError(HTTPStatus.GONE, f"instance {instance_id} has been deleted")
            return describe(op, instance.status)

    def _find_operation(
        self, session: Any, instance_id: str, binding_id: str | None, operation: str | None
    ) -> Operation:
        if operation:
            op = session.get(Operation, operation)
            if op is None or op.instance_id != instance_id or op.binding_id != binding_id:
                raise bad_request(f"operation {operation!r} is not an operation of this resource")
            return op
        op = latest_operation(session, instance_id, binding_id)
        if op is None:
            raise OsbError(HTTPStatus.NOT_FOUND, "no operation has been requested for this resource")
        return op


def describe(op: Operation, instance_status: str | None = None) -> LastOperation:
    """The last_operation answer for ``op``, with Retry-After while it runs."""
    extra: dict[str, Any] = {}
    if op.state == IN_PROGRESS:
        retry_after_for(op)
    elif op.state == OP_FAILED and op.kind == UPDATE:
        extra = {"instance_usable": True, "update_repeatable": True}
    elif op.state == OP_FAILED and op.kind == DEPROVISION:
        extra = {"instance_usable": instance_status == READY}
    g.extra_json = extra
    return LastOperation(STATES[op.state], op.description or op.state)


def visible(plan: Plan, parameters: dict[str, Any], resource: str = "service_instance") -> dict[str, Any]:
    """Parameters without the ones the plan's create schema marks ``writeOnly`` (secrets)."""
    schema = plan.schema(resource, "create") or {}
    props = schema.get("properties") or {}
    return {k: v for k, v in parameters.items() if not (props.get(k) or {}).get("writeOnly")}
