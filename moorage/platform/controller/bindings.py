"""Bindings: a service's credentials delivered to an app as config vars in a new release.

Why a release per attach and detach: the credentials are config, and config changes are
releases (see ``releases.py``): the runtime rolls the new release out with zero
downtime, the ledger records who attached what, and a failed deploy leaves the previous
release serving. The order of steps makes every failure safe:

- bind: record the binding, bind at the broker (the OSB client cleans up at the broker
  after a 5xx or a timeout), then the release; if that deploy fails, the binding is
  unbound at the broker again and nothing changed;
- unbind: the release without the binding's vars first (the app stops using them), then
  unbind at the broker (the old credentials stop working);
- rotate: a new binding under the same names, the release that uses it, then the old
  binding is unbound — the app serves throughout and ends with new credentials.

Each binding owns the config var names it set (and, with the others, ``VCAP_SERVICES``);
a new binding never takes names another binding or the user owns: it is refused with a
message suggesting ``--as``. All of it happens under the app's lock.
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

from moorage.errors import (
    ConflictError,
    Error,
    NotFoundError,
    ProviderError,
    UnprocessableError,
)
from moorage.platform.controller import apps, plan_parameters, releases, services
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.controller.credentials_env import (
    VCAP_SERVICES,
    BoundService,
    EnvRule,
    normalize_alias,
    rule_for,
    var_names,
    vars_for,
    vcap_services,
)
from moorage.platform.controller.instance_broker import connected, offering_of
from moorage.platform.controller.service_vars import check_free
from moorage.platform.runtime.base import Progress
from moorage.store.services import BINDING, BOUND, READY, UNBINDING, ServiceBinding, ServiceInstance

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


def _release(
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


def _find_binding(
    session: Session, who: Principal, name: str, app: str
) -> tuple[ServiceInstance, ServiceBinding, int]:
    app_row = apps.find(session, who, app)
    inst = services.find(session, who, name)
    binding = session.scalar(
        select(ServiceBinding).where(
            ServiceBinding.instance_id == inst.id, ServiceBinding.app_id == app_row.id
        )
    )
    if binding is None:
        raise NotFoundError(f"{name} is not bound to {app}; see `moorage services:info {name}`")
    return inst, binding, app_row.id


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
class _Attachment:
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
class _Attached:
    binding_id: str
    values: dict[str, str]
    release: dict[str, Any] | None
    broker_seconds: float
    rollout_seconds: float


def _attach(platform: Platform, who: Principal, plan: _Attachment) -> _Attached:
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
        release = _release(
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
        _undo(platform, who, binding_id)
        raise
    with platform.db.unit_of_work() as s:
        row = s.get(ServiceBinding, binding_id)
        assert row is not None
        row.state = BOUND
        if plan.replaces:
            old = s.get(ServiceBinding, plan.replaces)
            assert old is not None
            old.state, old.var_names = UNBINDING, []
    return _Attached(binding_id, values, release, broker_seconds, time.monotonic() - started)


def bind(
    platform: Platform,
    who: Principal,
    name: str,
    app: str,
    alias: Any,
    parameters: Any,
    progress: Progress,
) -> dict[str, Any]:
    """Bind ``name`` to ``app``; its credentials arrive as config vars in a new release."""
    prefix_wanted = normalize_alias(alias)
    params = services.validate_parameters(parameters)
    with platform.app_lock(app, who, f"services:bind {name}"):
        with platform.db.sessions() as s:
            app_row = apps.find(s, who, app)
            inst = services.find(s, who, name)
            if inst.state != READY:
                raise UnprocessableError(
                    f"{name} is {inst.state} ({inst.description}); only a ready service can be bound"
                )
            broker, offering, plan = offering_of(s, inst)
            if not plan.get("bindable", offering.get("bindable", False)):
                raise UnprocessableError(f"{inst.offering_name} {inst.plan_name} is not bindable")
            plan_parameters.check(plan, "service_binding", "create", params)
            if s.scalar(
                select(ServiceBinding.id).where(
                    ServiceBinding.instance_id == inst.id, ServiceBinding.app_id == app_row.id
                )
            ):
                raise ConflictError(
                    f"{name} is already bound to {app}; `moorage services:rotate {name} -a {app}` "
                    "renews its credentials"
                )
            rule = rule_for(offering, broker.name, own=broker.builtin)
            prefix = prefix_wanted or rule.prefix
            config = releases.config_of(platform, s, releases.current(s, app_row))
            check_free(s, app_row.id, app, config, var_names(rule, prefix), prefix_wanted)
            attachment = _Attachment(
                instance_id=inst.id,
                app_id=app_row.id,
                app=app,
                rule=rule,
                prefix=prefix,
                parameters=params,
                summary=f"{who.username} attached {name} ({inst.offering_name}) as {prefix}",
                progress=progress,
            )
        progress(f"moorage[services]: binding {name} to {app} as {prefix}")
        done = _attach(platform, who, attachment)
    log.info(
        "service bound", extra={"instance": attachment.instance_id, "binding": done.binding_id, "app": app}
    )
    return {
        "service": name,
        "app": app,
        "as": prefix,
        "config_vars": sorted(done.values) + [VCAP_SERVICES],
        "release": done.release,
        "timings": {"broker_seconds": done.broker_seconds, "rollout_seconds": done.rollout_seconds},
    }


def _undo(platform: Platform, who: Principal, binding_id: str) -> None:
    """After a failed release: give the new binding back at the broker, forget it."""
    try:
        unbind_at_broker(platform, who, binding_id)
    except Error as exc:
        log.warning("could not unbind after a failed release: %s", exc, extra={"binding": binding_id})
    forget(platform, binding_id)


def unbind(platform: Platform, who: Principal, name: str, app: str, progress: Progress) -> dict[str, Any]:
    """Remove the binding's vars (a new release), then unbind at the broker."""
    with platform.app_lock(app, who, f"services:unbind {name}"):
        with platform.db.unit_of_work() as s:
            _, binding, _ = _find_binding(s, who, name, app)
            binding_id, drop, previous = binding.id, list(binding.var_names or []), binding.state
            binding.state = UNBINDING
        try:
            release = _release(
                platform,
                who,
                app,
                f"{who.username} detached {name}",
                put={},
                drop=drop,
                include=set(),
                exclude={binding_id},
                progress=progress,
            )
        except Error:
            with platform.db.unit_of_work() as s:
                row = s.get(ServiceBinding, binding_id)
                if row is not None:
                    row.state = previous
            raise
        try:
            unbind_at_broker(platform, who, binding_id)
        except Error as exc:
            raise ProviderError(
                f"{app} no longer uses {name}, but the broker could not unbind it: {exc.message}; "
                f"run `moorage services:unbind {name} -a {app}` again"
            ) from None
        forget(platform, binding_id)
    progress(f"moorage[services]: {name} unbound from {app}")
    log.info("service unbound", extra={"binding": binding_id, "app": app})
    return {"service": name, "app": app, "removed": sorted(drop), "release": release}


def rotate(platform: Platform, who: Principal, name: str, app: str, progress: Progress) -> dict[str, Any]:
    """New binding → release using it → old binding removed; same var names, new credentials."""
    with platform.app_lock(app, who, f"services:rotate {name}"):
        with platform.db.sessions() as s:
            inst, old, app_id = _find_binding(s, who, name, app)
            if old.state != BOUND:
                raise UnprocessableError(
                    f"the binding of {name} to {app} is {old.state}; unbind it and bind again"
                )
            broker, offering, _ = offering_of(s, inst)
            attachment = _Attachment(
                instance_id=inst.id,
                app_id=app_id,
                app=app,
                rule=rule_for(offering, broker.name, own=broker.builtin),
                prefix=old.alias,
                parameters={},
                summary=f"{who.username} rotated the credentials of {name}",
                progress=progress,
                replaces=old.id,
                old_vars=tuple(old.var_names or ()),
            )
        progress(f"moorage[services]: new credentials for {name} on {app}")
        done = _attach(platform, who, attachment)
        old_id = attachment.replaces
        assert old_id is not None
        try:
            unbind_at_broker(platform, who, old_id)
        except Error as exc:
            raise ProviderError(
                f"{app} uses the new credentials of {name}, but the broker could not remove the old "
                f"binding: {exc.message}"
            ) from None
        forget(platform, old_id)
    progress(f"moorage[services]: {name} on {app} now uses new credentials")
    return {"service": name, "app": app, "as": attachment.prefix, "release": done.release}


def unbind_app(platform: Platform, who: Principal, app: str) -> None:
    """Before an app is destroyed: unbind every one of its bindings at the broker (no releases)."""
    with platform.db.unit_of_work() as s:
        app_row = apps.find(s, who, app)
        ids = list(s.scalars(select(ServiceBinding.id).where(ServiceBinding.app_id == app_row.id)))
    for binding_id in ids:
        unbind_at_broker(platform, who, binding_id)
        forget(platform, binding_id)
        log.info("service unbound from a destroyed app", extra={"binding": binding_id, "app": app})
