"""The saga that attaches a binding to an app, shared by bind and rotate.

Why its own module: bind and rotate run the same steps, and unbind, rotate and service
recovery give bindings back at the broker the same way; :mod:`bindings` holds the
user-facing commands around them. The steps, each undone when a later one fails:
record the binding, bind at the broker (the OSB client cleans up at the broker after a
5xx or a timeout, so the row is just forgotten), store the credentials and the var
names, roll out a release using them (unbound at the broker again on failure), mark it
bound. Callers hold the app's lock.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.errors import Error
from moorage.platform.controller import apps, releases
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.controller.credentials_env import (
    VCAP_SERVICES,
    BoundService,
    EnvRule,
    vars_for,
    vcap_services,
)
from moorage.platform.controller.instance_broker import connected, offering_of
from moorage.platform.osb_errors import OrphanLeft
from moorage.platform.runtime.base import Progress
from moorage.store.services import BINDING, BOUND, UNBINDING, ServiceBinding, ServiceInstance

log = logging.getLogger(__name__)


def _vcap(
    platform: Platform, session: Session, app_id: int, include: set[str], exclude: set[str]
) -> str | None:
    bound = []
    rows = session.execute(
        select(ServiceBinding, ServiceInstance)
        .join(ServiceInstance, ServiceInstance.id == ServiceBinding.instance_id)
        .where(ServiceBinding.app_id == app_id)
    )
    for binding, inst in rows:
        if binding.id in exclude or (binding.state != BOUND and binding.id not in include):
            continue
        broker, offering, _ = offering_of(session, inst)
        bound.append(
            BoundService(
                label=inst.offering_name,
                name=inst.name,
                binding_name=binding.alias.lower(),
                plan=inst.plan_name,
                tags=tuple(offering.get("tags") or ()),
                credentials=platform.encryptor.decrypt_json(binding.credentials_enc),
                provider=broker.name,
            )
        )
    return vcap_services(bound)


def release_vars(
    platform: Platform,
    who: Principal,
    app: str,
    summary: str,
    *,
    put: Mapping[str, str],
    drop: Iterable[str],
    include: set[str],
    exclude: set[str],
    progress: Progress,
) -> dict[str, Any] | None:
    """A release with ``put`` set, ``drop`` removed and VCAP_SERVICES rebuilt; None if nothing changed."""
    with platform.db.unit_of_work() as s:
        row = apps.find(s, who, app)
        rel = releases.current(s, row)
        old = releases.config_of(platform, s, rel)
        build_id = rel.build_id
        vcap = _vcap(platform, s, row.id, include, exclude)
    new = {k: v for k, v in old.items() if k not in set(drop)}
    new.update(put)
    if vcap is None:
        new.pop(VCAP_SERVICES, None)
    else:
        new[VCAP_SERVICES] = vcap
    if new == old:
        return None
    return releases.record(
        platform, who, app, summary, build_id=build_id, config_values=new, progress=progress
    )


def _bind_at_broker(
    platform: Platform,
    who: Principal,
    instance_id: str,
    binding_id: str,
    app: str,
    parameters: Mapping[str, Any],
) -> dict[str, Any]:
    with connected(platform, instance_id) as at:
        context = {"app_name": app, "instance_name": at.instance_name, "user": who.username}
        result = at.client.bind(
            instance_id, binding_id, at.offering, at.plan, parameters, context, app, user=who.username
        )
    return dict(result.body["credentials"])


def unbind_at_broker(platform: Platform, who: Principal, binding_id: str) -> None:
    with platform.db.sessions() as s:
        binding = s.get(ServiceBinding, binding_id)
        assert binding is not None
        instance_id = binding.instance_id
    with connected(platform, instance_id) as at:
        at.client.unbind(instance_id, binding_id, at.offering["id"], at.plan, user=who.username)


def forget(platform: Platform, binding_id: str) -> None:
    with platform.db.unit_of_work() as s:
        binding = s.get(ServiceBinding, binding_id)
        if binding is not None:
            s.delete(binding)


@dataclass(frozen=True)
class Attachment:
    """A binding to make and roll out; ``replaces`` the binding a rotation retires."""

    instance_id: str
    app_id: int
    app: str
    rule: EnvRule
    prefix: str
    parameters: Mapping[str, Any]
    summary: str
    progress: Progress
    replaces: str | None = None
    old_vars: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attached:
    binding_id: str
    values: dict[str, str]
    release: dict[str, Any] | None
    broker_seconds: float
    rollout_seconds: float


def attach(platform: Platform, who: Principal, plan: Attachment) -> Attached:
    """The saga of bind and rotate, under the app's lock; every failure leaves nothing behind.

    Record the binding, bind at the broker (forgotten on error: the OSB client already
    cleaned up at the broker), store the credentials and the var names, roll out the
    release using them (undone at the broker on error), then mark it bound — and the
    binding it replaces unbinding, in the same transaction.
    """
    with platform.db.unit_of_work() as s:
        binding = ServiceBinding(
            id=str(uuid.uuid4()),
            app_id=plan.app_id,
            instance_id=plan.instance_id,
            alias=plan.prefix,
            var_names=[],
            state=BINDING,
            created_by=who.username,
        )
        s.add(binding)
        binding_id = binding.id
    started = time.monotonic()
    try:
        credentials = _bind_at_broker(platform, who, plan.instance_id, binding_id, plan.app, plan.parameters)
    except OrphanLeft:  # the broker may hold it: keep it, to be unbound (services:unbind, a restart)
        _left_unbinding(platform, binding_id)
        raise
    except Error:
        forget(platform, binding_id)
        raise
    broker_seconds = time.monotonic() - started
    values = vars_for(plan.rule, plan.prefix, credentials)
    with platform.db.unit_of_work() as s:
        row = s.get(ServiceBinding, binding_id)
        assert row is not None
        row.credentials_enc = platform.encryptor.encrypt_json(credentials)
        row.var_names = sorted(values)
    started = time.monotonic()
    try:
        release = release_vars(
            platform,
            who,
            plan.app,
            plan.summary,
            put=values,
            drop=[v for v in plan.old_vars if v not in values],
            include={binding_id},
            exclude={plan.replaces} if plan.replaces else set(),
            progress=plan.progress,
        )
    except Error:
        undo(platform, who, binding_id)
        raise
    with platform.db.unit_of_work() as s:
        row = s.get(ServiceBinding, binding_id)
        assert row is not None
        row.state = BOUND
        if plan.replaces:
            old = s.get(ServiceBinding, plan.replaces)
            assert old is not None
            old.state, old.var_names = UNBINDING, []
    return Attached(binding_id, values, release, broker_seconds, time.monotonic() - started)


def undo(platform: Platform, who: Principal, binding_id: str) -> None:
    """After a failed release: give the new binding back at the broker, forget it.

    When the broker cannot unbind it now, the row stays, as being removed: its credentials
    still work at the broker, so forgetting it would leave them live with no one able to
    revoke them (and the broker would refuse to deprovision the instance). ``services:unbind``
    or the next controller start (service_recovery) finishes it.
    """
    try:
        unbind_at_broker(platform, who, binding_id)
    except Error as exc:
        log.warning("could not unbind after a failed release: %s", exc, extra={"binding": binding_id})
        _left_unbinding(platform, binding_id)
        return
    forget(platform, binding_id)


def _left_unbinding(platform: Platform, binding_id: str) -> None:
    """Keep a binding no release uses as ``unbinding``, so it is unbound later."""
    with platform.db.unit_of_work() as s:
        row = s.get(ServiceBinding, binding_id)
        if row is not None:
            row.state, row.var_names = UNBINDING, []
