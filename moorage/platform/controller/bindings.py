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
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.errors import (
    ConflictError,
    Error,
    InvalidParametersError,
    NotFoundError,
    ProviderError,
    UnprocessableError,
)
from moorage.platform.controller import apps, brokers, releases, services
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.controller.credentials_env import (
    VCAP_SERVICES,
    BoundService,
    normalize_alias,
    reserved_reason,
    rule_for,
    var_names,
    vars_for,
    vcap_services,
)
from moorage.platform.controller.service_vars import owned_vars
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
        _, offering, _ = services.offering_of(session, inst)
        bound.append(
            BoundService(
                label=inst.offering_name,
                name=inst.name,
                binding_name=binding.alias.lower(),
                plan=inst.plan_name,
                tags=tuple(offering.get("tags") or ()),
                credentials=platform.encryptor.decrypt_json(binding.credentials_enc),
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
    with platform.db.unit_of_work() as s:
        inst = s.get(ServiceInstance, instance_id)
        assert inst is not None
        broker, offering, plan = services.offering_of(s, inst)
        context = {"app_name": app, "instance_name": inst.name, "user": who.username}
        s.expunge(broker)
    client = brokers.client_for(platform, broker)
    try:
        result = client.bind(
            instance_id, binding_id, offering, plan, parameters, context, app, user=who.username
        )
    finally:
        client.close()
    return dict(result.body["credentials"])


def unbind_at_broker(platform: Platform, who: Principal, binding_id: str) -> None:
    with platform.db.unit_of_work() as s:
        binding = s.get(ServiceBinding, binding_id)
        assert binding is not None
        inst = s.get(ServiceInstance, binding.instance_id)
        assert inst is not None
        broker, offering, plan = services.offering_of(s, inst)
        instance_id = inst.id
        s.expunge(broker)
    client = brokers.client_for(platform, broker)
    try:
        client.unbind(instance_id, binding_id, offering["id"], plan, user=who.username)
    finally:
        client.close()


def forget(platform: Platform, binding_id: str) -> None:
    with platform.db.unit_of_work() as s:
        binding = s.get(ServiceBinding, binding_id)
        if binding is not None:
            s.delete(binding)


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
    with platform.app_lock(app):
        with platform.db.unit_of_work() as s:
            app_row = apps.find(s, who, app)
            inst = services.find(s, who, name)
            if inst.state != READY:
                raise UnprocessableError(
                    f"{name} is {inst.state} ({inst.description}); only a ready service can be bound"
                )
            broker, offering, plan = services.offering_of(s, inst)
            if not plan.get("bindable", offering.get("bindable", False)):
                raise UnprocessableError(f"{inst.offering_name} {inst.plan_name} is not bindable")
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
            names = var_names(rule, prefix)
            owned = owned_vars(s, app_row.id)
            config = releases.config_of(platform, s, releases.current(s, app_row))
            for var in names:
                reason = reserved_reason(var) if prefix_wanted else None
                if reason is not None:
                    raise InvalidParametersError(
                        f"the alias {prefix_wanted} would set {var}, which is refused ({reason}); "
                        "choose another alias"
                    )
                if var in owned:
                    raise ConflictError(
                        f"{app} already has {var} from the service {owned[var]}; bind with an alias "
                        f"(--as OTHER gives OTHER_URL, …) so neither overwrites the other"
                    )
                if var in config:
                    raise ConflictError(
                        f"{app} already has {var} set with config:set; bind with an alias (--as OTHER) "
                        f"or remove it first (`moorage config:unset {var} -a {app}`)"
                    )
            binding = ServiceBinding(
                id=str(uuid.uuid4()),
                app_id=app_row.id,
                instance_id=inst.id,
                alias=prefix,
                var_names=[],
                state=BINDING,
                created_by=who.username,
            )
            s.add(binding)
            binding_id, instance_id, label = binding.id, inst.id, inst.offering_name
        progress(f"moorage[services]: binding {name} to {app} as {prefix}")
        started = time.monotonic()
        try:
            credentials = _bind_at_broker(platform, who, instance_id, binding_id, app, params)
        except Error:
            forget(platform, binding_id)
            raise
        broker_seconds = time.monotonic() - started
        values = vars_for(rule, prefix, credentials)
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
                app,
                f"{who.username} attached {name} ({label}) as {prefix}",
                put=values,
                drop=(),
                include={binding_id},
                exclude=set(),
                progress=progress,
            )
        except Error:
            _undo(platform, who, binding_id)
            raise
        with platform.db.unit_of_work() as s:
            row = s.get(ServiceBinding, binding_id)
            assert row is not None
            row.state = BOUND
    log.info("service bound", extra={"instance": instance_id, "binding": binding_id, "app": app})
    return {
        "service": name,
        "app": app,
        "as": prefix,
        "config_vars": sorted(values) + [VCAP_SERVICES],
        "release": release,
        "timings": {"broker_seconds": broker_seconds, "rollout_seconds": time.monotonic() - started},
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
    with platform.app_lock(app):
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
    with platform.app_lock(app):
        with platform.db.unit_of_work() as s:
            inst, old, app_id = _find_binding(s, who, name, app)
            if old.state != BOUND:
                raise UnprocessableError(
                    f"the binding of {name} to {app} is {old.state}; unbind it and bind again"
                )
            broker, offering, _ = services.offering_of(s, inst)
            rule = rule_for(offering, broker.name, own=broker.builtin)
            old_id, prefix, old_vars, instance_id = old.id, old.alias, list(old.var_names or []), inst.id
            new = ServiceBinding(
                id=str(uuid.uuid4()),
                app_id=app_id,
                instance_id=inst.id,
                alias=prefix,
                var_names=[],
                state=BINDING,
                created_by=who.username,
            )
            s.add(new)
            new_id = new.id
        progress(f"moorage[services]: new credentials for {name} on {app}")
        try:
            credentials = _bind_at_broker(platform, who, instance_id, new_id, app, {})
        except Error:
            forget(platform, new_id)
            raise
        values = vars_for(rule, prefix, credentials)
        with platform.db.unit_of_work() as s:
            row = s.get(ServiceBinding, new_id)
            assert row is not None
            row.credentials_enc = platform.encryptor.encrypt_json(credentials)
            row.var_names = sorted(values)
        try:
            release = _release(
                platform,
                who,
                app,
                f"{who.username} rotated the credentials of {name}",
                put=values,
                drop=[v for v in old_vars if v not in values],
                include={new_id},
                exclude={old_id},
                progress=progress,
            )
        except Error:
            _undo(platform, who, new_id)
            raise
        with platform.db.unit_of_work() as s:
            row = s.get(ServiceBinding, new_id)
            assert row is not None
            row.state = BOUND
            old_row = s.get(ServiceBinding, old_id)
            assert old_row is not None
            old_row.state, old_row.var_names = UNBINDING, []
        try:
            unbind_at_broker(platform, who, old_id)
        except Error as exc:
            raise ProviderError(
                f"{app} uses the new credentials of {name}, but the broker could not remove the old "
                f"binding: {exc.message}"
            ) from None
        forget(platform, old_id)
    progress(f"moorage[services]: {name} on {app} now uses new credentials")
    return {"service": name, "app": app, "as": prefix, "release": release}


def unbind_app(platform: Platform, who: Principal, app: str) -> None:
    """Before an app is destroyed: unbind every one of its bindings at the broker (no releases)."""
    with platform.db.unit_of_work() as s:
        app_row = apps.find(s, who, app)
        ids = list(s.scalars(select(ServiceBinding.id).where(ServiceBinding.app_id == app_row.id)))
    for binding_id in ids:
        unbind_at_broker(platform, who, binding_id)
        forget(platform, binding_id)
        log.info("service unbound from a destroyed app", extra={"binding": binding_id, "app": app})
