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
message suggesting ``--as``. All of it happens under the app's lock. The steps shared
by bind and rotate are the saga in :mod:`binding_saga`.
"""

from __future__ import annotations

import logging
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
from moorage.platform.controller.binding_saga import (
    Attachment,
    attach,
    forget,
    release_vars,
    unbind_at_broker,
)
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.controller.credentials_env import (
    VCAP_SERVICES,
    normalize_alias,
    rule_for,
    var_names,
)
from moorage.platform.controller.instance_broker import offering_of
from moorage.platform.controller.service_vars import check_free
from moorage.platform.runtime.base import Progress
from moorage.store.services import BOUND, READY, UNBINDING, ServiceBinding, ServiceInstance

log = logging.getLogger(__name__)


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
            attachment = Attachment(
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
        done = attach(platform, who, attachment)
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


def unbind(platform: Platform, who: Principal, name: str, app: str, progress: Progress) -> dict[str, Any]:
    """Remove the binding's vars (a new release), then unbind at the broker."""
    with platform.app_lock(app, who, f"services:unbind {name}"):
        with platform.db.unit_of_work() as s:
            _, binding, _ = _find_binding(s, who, name, app)
            binding_id, drop, previous = binding.id, list(binding.var_names or []), binding.state
            binding.state = UNBINDING
        try:
            release = release_vars(
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
            attachment = Attachment(
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
        done = attach(platform, who, attachment)
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
