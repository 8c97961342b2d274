"""Service instances: create, list, show, update and destroy them at their broker.

Why "record, then act, in a job": the instance row is written (``creating``) before the
broker is asked, so a failure, a polling limit or a controller crash always leaves a row
that says what happened. Provisioning runs as a job (:func:`provision`) that the API
either streams to the client line by line (``services:create``, waiting) or starts in
a background thread (``--wait=false``; the CLI then polls ``services:info``). Either
way the job keeps going if the client goes away, and it always ends: the OSB client
gives up after the plan's ``maximum_polling_duration`` or the controller's own
``osb_max_polling_seconds``, and the instance is then ``failed`` with that reason.
Before anything is recorded the broker's catalog is re-fetched, which makes a broker
that is down fail the request at once with a readable error and no row, and the
parameters are checked against the plan's published schema (``plan_parameters``).
A refusal by the broker (a 4xx, see ``osb_errors``) changes nothing: a refused
provision removes the row again, so the name is free at once; a refused update puts
the row back exactly as it was. Only a failure (5xx, time-out) leaves a ``failed`` row.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.errors import ConflictError, Error, InvalidParametersError, NotFoundError, UnprocessableError
from moorage.platform.controller import brokers, marketplace, plan_parameters
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.controller.instance_broker import AtBroker, connected, offering_of
from moorage.platform.osb_errors import Refusal
from moorage.platform.runtime.base import Progress
from moorage.store.apps import App, User
from moorage.store.services import (
    CREATING,
    DELETING,
    INSTANCE_FAILED,
    READY,
    UPDATING,
    Broker,
    ServiceBinding,
    ServiceInstance,
)

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidParametersError(
            f"invalid service name {name!r}: use at most 63 lower-case letters, digits and dashes, "
            "starting with a letter"
        )
    return name


def validate_parameters(parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise InvalidParametersError("parameters must be a JSON object, e.g. -p '{\"connection_limit\": 10}'")
    return parameters


def find(session: Session, who: Principal, name: str) -> ServiceInstance:
    """The caller's instance named ``name`` (an admin may name anyone's if the name is unique)."""
    inst = session.scalar(
        select(ServiceInstance).where(ServiceInstance.owner_id == who.id, ServiceInstance.name == name)
    )
    if inst is None and who.is_admin:
        found = list(session.scalars(select(ServiceInstance).where(ServiceInstance.name == name)))
        inst = found[0] if len(found) == 1 else None
    if inst is None:
        raise NotFoundError(f"no service named {name!r}; see `moorage services` for yours")
    return inst


def describe(platform: Platform, session: Session, inst: ServiceInstance) -> dict[str, Any]:
    broker = session.get(Broker, inst.broker_id)
    owner = session.get(User, inst.owner_id)
    apps = list(
        session.execute(
            select(App.name, ServiceBinding.alias, ServiceBinding.state)
            .join(ServiceBinding, ServiceBinding.app_id == App.id)
            .where(ServiceBinding.instance_id == inst.id)
            .order_by(App.name)
        )
    )
    return {
        "name": inst.name,
        "id": inst.id,
        "service": inst.offering_name,
        "plan": inst.plan_name,
        "broker": broker.name if broker else None,
        "state": inst.state,
        "description": inst.description,
        "owner": owner.username if owner else None,
        "bindings": [{"app": a, "as": alias, "state": state} for a, alias, state in apps],
        "created": inst.created_at.isoformat(),
        "updated": inst.updated_at.isoformat(),
    }


def _with_apps(out: dict[str, Any]) -> dict[str, Any]:
    out["apps"] = sorted({b["app"] for b in out["bindings"]})
    return out


def list_instances(platform: Platform, who: Principal) -> list[dict[str, Any]]:
    with platform.db.unit_of_work() as s:
        query = select(ServiceInstance).order_by(ServiceInstance.name)
        if not who.is_admin:
            query = query.where(ServiceInstance.owner_id == who.id)
        return [_with_apps(describe(platform, s, i)) for i in s.scalars(query)]


def info(platform: Platform, who: Principal, name: str) -> dict[str, Any]:
    with platform.db.unit_of_work() as s:
        return _with_apps(describe(platform, s, find(s, who, name)))


def start_create(
    platform: Platform,
    who: Principal,
    service: Any,
    plan: Any,
    name: Any,
    parameters: Any,
    broker: str | None = None,
) -> tuple[dict[str, Any], Callable[[Progress], dict[str, Any]]]:
    """Check everything, record the instance (``creating``); the job that provisions it."""
    validate_name(name)
    params = validate_parameters(parameters)
    if not isinstance(plan, str) or not plan:
        raise InvalidParametersError("name the plan (see `moorage marketplace SERVICE`)")
    broker_name, _, _ = marketplace.resolve(platform, service, plan, broker)
    with platform.db.unit_of_work() as s:
        if s.scalar(
            select(ServiceInstance.id).where(ServiceInstance.owner_id == who.id, ServiceInstance.name == name)
        ):
            raise ConflictError(f"you already have a service named {name!r}; choose another name")
    brokers.fetch_catalog(platform, broker_name, force=True)  # reachable? and fresh
    broker_name, offering, found = marketplace.resolve(platform, service, plan, broker_name)
    assert found is not None
    plan_parameters.check(found, "service_instance", "create", params)
    with platform.db.unit_of_work() as s:
        if s.scalar(
            select(ServiceInstance.id).where(ServiceInstance.owner_id == who.id, ServiceInstance.name == name)
        ):
            raise ConflictError(f"you already have a service named {name!r}; choose another name")
        inst = ServiceInstance(
            id=str(uuid.uuid4()),
            name=name,
            owner_id=who.id,
            broker_id=brokers.find(s, broker_name).id,
            offering_id=offering["id"],
            offering_name=offering["name"],
            plan_id=found["id"],
            plan_name=found["name"],
            parameters_enc=platform.encryptor.encrypt_json(params),
            state=CREATING,
            description="provisioning requested",
        )
        s.add(inst)
        s.flush()
        out = _with_apps(describe(platform, s, inst))
        instance_id = inst.id
    log.info("service instance recorded", extra={"instance": instance_id, "user": who.username})
    return out, lambda progress: provision(platform, who, instance_id, progress)


def _progress_reporter(progress: Progress, name: str) -> Callable[[str], None]:
    last: list[str] = []

    def report(description: str) -> None:
        if description and description not in last[-1:]:
            last.append(description)
            progress(f"moorage[services]: {name}: {description}")

    return report


def _set_state(platform: Platform, instance_id: str, state: str, description: str) -> None:
    with platform.db.unit_of_work() as s:
        inst = s.get(ServiceInstance, instance_id)
        if inst is not None:
            inst.state, inst.description = state, description


def _forget(platform: Platform, instance_id: str) -> None:
    with platform.db.unit_of_work() as s:
        inst = s.get(ServiceInstance, instance_id)
        if inst is not None:
            s.delete(inst)


def provision(platform: Platform, who: Principal, instance_id: str, progress: Progress) -> dict[str, Any]:
    """Ask the broker and wait (bounded by the polling limits); the instance ends ready or failed."""
    with platform.db.sessions() as s:
        inst = s.get(ServiceInstance, instance_id)
        assert inst is not None
        params = platform.encryptor.decrypt_json(inst.parameters_enc)
        name = inst.name
    with connected(platform, instance_id, _progress_reporter(progress, name)) as at:
        progress(
            f"moorage[services]: creating {name} ({at.offering['name']} {at.plan['name']}) at broker {at.broker}"
        )
        try:
            result = at.client.provision(
                instance_id,
                at.offering,
                at.plan,
                params,
                {"instance_name": name, "user": who.username},
                user=who.username,
            )
        except Refusal as exc:  # nothing was created at the broker: nothing is kept here either
            _forget(platform, instance_id)
            progress(f"moorage[services]: {name} was not created; the name is free again")
            log.info("provisioning refused", extra={"instance": instance_id, "reason": exc.message})
            raise
        except Error as exc:
            _set_state(platform, instance_id, INSTANCE_FAILED, exc.message)
            progress(f"moorage[services]: {name} failed: {exc.message}")
            raise UnprocessableError(f"creating {name} failed: {exc.message}") from None
        except Exception:
            log.exception("provisioning crashed", extra={"instance": instance_id})
            _set_state(
                platform, instance_id, INSTANCE_FAILED, "internal error in the controller (see its log)"
            )
            raise
    _set_state(platform, instance_id, READY, result.description or "ready")
    progress(f"moorage[services]: {name} is ready")
    log.info("service instance ready", extra={"instance": instance_id})
    return info(platform, who, name)


def _restore(platform: Platform, instance_id: str, state: str, description: str, updated: Any) -> None:
    """The instance exactly as it was before an update the broker refused (its time stamp too)."""
    with platform.db.unit_of_work() as s:
        inst = s.get(ServiceInstance, instance_id)
        if inst is not None:
            inst.state, inst.description, inst.updated_at = state, description, updated


def update(
    platform: Platform, who: Principal, name: str, plan: Any, parameters: Any, progress: Progress
) -> dict[str, Any]:
    """Change the plan and/or parameters at the broker (waits until done)."""
    if plan is None and parameters is None:
        raise InvalidParametersError("give a new plan (--plan) and/or parameters (-p JSON)")
    params = None if parameters is None else validate_parameters(parameters)
    with platform.app_lock(f"service/{name}", who, "services:update", long=True):
        with platform.db.unit_of_work() as s:
            inst = find(s, who, name)
            if inst.state != READY:
                raise UnprocessableError(f"{name} is {inst.state}; only a ready service can be updated")
            _, offering, current = offering_of(s, inst)
            new_plan = current
            if plan is not None:
                matches = [p for p in offering.get("plans") or [] if plan in (p.get("name"), p.get("id"))]
                if not matches:
                    names = ", ".join(p["name"] for p in offering.get("plans") or [])
                    raise NotFoundError(f"{offering['name']} has no plan {plan!r}; plans: {names}")
                new_plan = matches[0]
            if params is not None:
                plan_parameters.check(new_plan, "service_instance", "update", params)
            before = (inst.state, inst.description, inst.updated_at)
            inst.state, inst.description = UPDATING, "update requested"
            instance_id, previous = inst.id, inst.plan_id
        with _at_broker(
            platform, instance_id, progress, name, before, (READY, "the last update failed")
        ) as at:
            at.client.update(instance_id, offering, new_plan, params, previous, user=who.username)
        with platform.db.unit_of_work() as s:
            inst = s.get(ServiceInstance, instance_id)
            assert inst is not None
            inst.state, inst.description = READY, "updated"
            inst.plan_id, inst.plan_name = new_plan["id"], new_plan["name"]
            if params is not None:
                merged = {**platform.encryptor.decrypt_json(inst.parameters_enc), **params}
                inst.parameters_enc = platform.encryptor.encrypt_json(merged)
        progress(f"moorage[services]: {name} updated")
    return info(platform, who, name)


@contextlib.contextmanager
def _at_broker(
    platform: Platform,
    instance_id: str,
    progress: Progress,
    name: str,
    before: tuple[Any, ...],
    failed: tuple[str, str],
) -> Iterator[AtBroker]:
    """A call changing an existing instance at its broker: a refusal leaves the row as it
    was (``before``: the broker changed nothing, so neither does the platform); any other
    error leaves it in ``failed`` (its state, and the words before the broker's message)."""
    with connected(platform, instance_id, _progress_reporter(progress, name)) as at:
        try:
            yield at
        except Refusal:
            _restore(platform, instance_id, *before)
            raise
        except Error as exc:
            _set_state(platform, instance_id, failed[0], f"{failed[1]}: {exc.message}")
            raise


def bound_apps(platform: Platform, who: Principal, name: str) -> list[str]:
    """The names of the apps an instance is bound to, sorted."""
    with platform.db.unit_of_work() as s:
        inst = find(s, who, name)
        return sorted(
            s.scalars(
                select(App.name)
                .join(ServiceBinding, ServiceBinding.app_id == App.id)
                .where(ServiceBinding.instance_id == inst.id)
            )
        )


def deprovision(platform: Platform, who: Principal, name: str, progress: Progress) -> None:
    """Deprovision an instance that has no bindings at its broker, then forget it."""
    with platform.app_lock(f"service/{name}", who, "services:destroy", long=True):
        with platform.db.unit_of_work() as s:
            inst = find(s, who, name)
            before = (inst.state, inst.description, inst.updated_at)
            inst.state, inst.description = DELETING, "deprovisioning requested"
            instance_id = inst.id
        failed = (INSTANCE_FAILED, "deprovisioning failed")
        with _at_broker(platform, instance_id, progress, name, before, failed) as at:
            at.client.deprovision(instance_id, at.offering["id"], at.plan, user=who.username)
        with platform.db.unit_of_work() as s:
            inst = s.get(ServiceInstance, instance_id)
            if inst is not None:
                s.delete(inst)
    progress(f"moorage[services]: {name} destroyed")
    log.info("service instance destroyed", extra={"instance": instance_id, "user": who.username})
