"""The marketplace: every registered broker's offerings and plans, as users choose them.

Why a view over the cached catalogs: users name a service and a plan (``postgresql
shared-small``); this module turns that into the broker, offering and plan the OSB
client needs, and says clearly what exists when the name is wrong or ambiguous (two
brokers may offer a service with the same name: ``--broker`` chooses).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from moorage.errors import InvalidParametersError, NotFoundError
from moorage.platform.controller import brokers
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.controller.credentials_env import rule_for, var_names
from moorage.platform.controller.plan_parameters import published_schema
from moorage.store.services import Broker


def _plan_view(plan: dict[str, Any], offering: dict[str, Any]) -> dict[str, Any]:
    instance = published_schema(plan, "service_instance", "create")
    update = published_schema(plan, "service_instance", "update")
    binding = published_schema(plan, "service_binding", "create")
    return {
        "id": plan.get("id"),
        "name": plan.get("name"),
        "description": plan.get("description", ""),
        "free": plan.get("free", True),
        "bindable": plan.get("bindable", offering.get("bindable", False)),
        "plan_updateable": plan.get("plan_updateable", offering.get("plan_updateable", False)),
        "maximum_polling_duration": plan.get("maximum_polling_duration"),
        "parameters": {"create": instance, "update": update, "bind": binding},
    }


def _offering_view(broker: str, offering: dict[str, Any], detail: bool, own: bool) -> dict[str, Any]:
    rule = rule_for(offering, broker, own=own)  # the rule binding will use (see bindings.bind)
    out: dict[str, Any] = {
        "name": offering.get("name"),
        "id": offering.get("id"),
        "broker": broker,
        "description": offering.get("description", ""),
        "bindable": bool(offering.get("bindable")),
        "tags": list(offering.get("tags") or []),
        "config_vars": var_names(rule, rule.prefix),
        "plans": [_plan_view(p, offering) for p in offering.get("plans") or []],
    }
    if not detail:
        for plan in out["plans"]:
            plan.pop("parameters")
    else:
        out["metadata"] = offering.get("metadata") or {}
    return out


def list_offerings(platform: Platform, who: Principal) -> dict[str, Any]:
    offerings, problems = [], []
    builtin = _builtin_brokers(platform)
    for broker, catalog, problem in brokers.catalogs(platform):
        if problem:
            problems.append(f"broker {broker}: {problem}")
        offerings.extend(
            _offering_view(broker, o, detail=False, own=broker in builtin) for o in catalog.services
        )
    offerings.sort(key=lambda o: (o["name"], o["broker"]))
    return {"results": offerings, "warnings": problems}


def show(platform: Platform, who: Principal, service: str, broker: str | None = None) -> dict[str, Any]:
    name, offering, _ = resolve(platform, service, None, broker)
    return _offering_view(name, offering, detail=True, own=name in _builtin_brokers(platform))


def _builtin_brokers(platform: Platform) -> set[str]:
    with platform.db.sessions() as s:
        return set(s.scalars(select(Broker.name).where(Broker.builtin.is_(True))))


def resolve(
    platform: Platform, service: Any, plan: Any, broker: str | None = None
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """(broker name, offering, plan) for names a user typed; clear errors otherwise."""
    if not isinstance(service, str) or not service:
        raise InvalidParametersError("name the service (see `moorage marketplace`)")
    if plan is not None and (not isinstance(plan, str) or not plan):
        raise InvalidParametersError("name the plan (see `moorage marketplace SERVICE`)")
    everything = brokers.catalogs(platform)
    if broker is not None and broker not in {n for n, _, _ in everything}:
        raise NotFoundError(f"no broker named {broker!r}; see `moorage brokers`")
    matches = []
    known: set[str] = set()
    for name, catalog, _ in everything:
        if broker is not None and name != broker:
            continue
        known.update(str(o.get("name")) for o in catalog.services)
        for offering in catalog.services:
            if service in (offering.get("name"), offering.get("id")):
                matches.append((name, catalog))
    if not matches:
        raise NotFoundError(
            f"no service {service!r} in the marketplace; services: {', '.join(sorted(known)) or 'none'}"
        )
    if len(matches) > 1:
        names = ", ".join(n for n, _ in matches)
        raise InvalidParametersError(f"several brokers offer {service!r} ({names}); choose one with --broker")
    name, catalog = matches[0]
    offering, found = catalog.find(service, plan)
    return name, offering, found
