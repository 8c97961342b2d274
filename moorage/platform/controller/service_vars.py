"""Which config vars of an app its bound services provide, and how they are protected.

Why apart from ``bindings``: the config API and the release ledger need these rules too
(``config`` masks the values unless revealed; ``config:set`` refuses to change them
without ``--force``), and they must not pull in the whole binding workflow. A binding
records the var names it set; together the app's bindings also own ``VCAP_SERVICES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.errors import ConflictError, InvalidParametersError
from moorage.platform.controller import apps
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.controller.credentials_env import VCAP_SERVICES, reserved_reason
from moorage.store.services import ServiceBinding, ServiceInstance


def owned_vars(session: Session, app_id: int, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Config var → the service (instance name) that provides it, for one app."""
    skip = set(exclude)
    out: dict[str, str] = {}
    rows = session.execute(
        select(ServiceBinding, ServiceInstance.name)
        .join(ServiceInstance, ServiceInstance.id == ServiceBinding.instance_id)
        .where(ServiceBinding.app_id == app_id)
    )
    for binding, name in rows:
        if binding.id in skip:
            continue
        for var in binding.var_names or []:
            out[var] = name
        out[VCAP_SERVICES] = "services"
    return out


MASK = "********"


def refuse_service_vars(session: Session, app_id: int, app: str, changes: Mapping[str, Any]) -> None:
    """ConflictError when ``changes`` touch a var a bound service provides (config:set without --force)."""
    owned = owned_vars(session, app_id)
    for key in sorted(changes):
        if key in owned:
            raise ConflictError(
                f"{key} is provided by the service {owned[key]} bound to {app}; change it with "
                f"`moorage services:rotate` or `services:unbind`, or override it with --force"
            )


def check_free(
    session: Session,
    app_id: int,
    app: str,
    config: Mapping[str, str],
    names: Iterable[str],
    alias: str | None,
) -> None:
    """The vars a new binding would set must be free: not refused (for an ``alias`` the user
    chose), not another binding's, not set by the user; the error says how to choose others."""
    owned = owned_vars(session, app_id)
    for var in names:
        reason = reserved_reason(var) if alias else None
        if reason is not None:
            raise InvalidParametersError(
                f"the alias {alias} would set {var}, which is refused ({reason}); choose another alias"
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


def masked(platform: Platform, who: Principal, app: str, values: Mapping[str, str]) -> dict[str, str]:
    """``values`` with every service-provided value replaced by a mask."""
    with platform.db.unit_of_work() as s:
        owned = owned_vars(s, apps.find(s, who, app).id)
    return {k: (MASK if k in owned else v) for k, v in values.items()}
