"""What an OSB request asks for: parsed and checked once, then passed to the decisions.

Why Moorage's own objects and not openbrokerapi's ``ProvisionDetails``/``UpdateDetails``/
``BindDetails``: those re-read the body with plain ``json.loads`` (NaN, 1e400 and deep
nesting pass) and drop what the decisions need — ``maintenance_info``,
``predecessor_binding_id``, the keys of ``bind_resource`` other than ``app_guid``/``route``,
and the request identity header. :mod:`compliance` builds one of these per request
from the strict parse; :mod:`service_broker` hands it to :mod:`instances` and
:mod:`bindings` as an argument, so no decision reads request data from ``flask.g``.

The optional fields keep the value as sent (``None`` when absent): the fingerprints
that recognise a re-sent request are computed from them and must not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ProvisionRequest:
    """PUT /v2/service_instances/:id."""

    service_id: str
    plan_id: str
    organization_guid: str
    space_guid: str
    parameters: JsonObject | None
    context: JsonObject | None
    maintenance_info: JsonObject | None
    identity: str | None


@dataclass(frozen=True)
class UpdateRequest:
    """PATCH /v2/service_instances/:id; ``plan_id`` is ``None`` when the plan stays."""

    service_id: str
    plan_id: str | None
    parameters: JsonObject | None
    context: JsonObject | None
    maintenance_info: JsonObject | None
    identity: str | None


@dataclass(frozen=True)
class BindRequest:
    """PUT /v2/service_instances/:id/service_bindings/:binding_id."""

    service_id: str
    plan_id: str
    app_guid: str | None
    bind_resource: JsonObject | None
    parameters: JsonObject | None
    context: JsonObject | None
    predecessor_binding_id: str | None
    identity: str | None


@dataclass(frozen=True)
class DeleteRequest:
    """DELETE of an instance or a binding: the ids come in the query string."""

    service_id: str
    plan_id: str
    identity: str | None


OsbRequest = ProvisionRequest | UpdateRequest | BindRequest | DeleteRequest


def provision_request(body: JsonObject, identity: str | None) -> ProvisionRequest:
    """From a body whose required strings and object fields :mod:`compliance` has checked."""
    return ProvisionRequest(
        service_id=body["service_id"],
        plan_id=body["plan_id"],
        organization_guid=body["organization_guid"],
        space_guid=body["space_guid"],
        parameters=body.get("parameters"),
        context=body.get("context"),
        maintenance_info=body.get("maintenance_info"),
        identity=identity,
    )


def update_request(body: JsonObject, identity: str | None) -> UpdateRequest:
    """``previous_values`` is not kept: it describes the instance, and no decision reads it."""
    return UpdateRequest(
        service_id=body["service_id"],
        plan_id=body.get("plan_id"),
        parameters=body.get("parameters"),
        context=body.get("context"),
        maintenance_info=body.get("maintenance_info"),
        identity=identity,
    )


def bind_request(body: JsonObject, identity: str | None) -> BindRequest:
    return BindRequest(
        service_id=body["service_id"],
        plan_id=body["plan_id"],
        app_guid=body.get("app_guid"),
        bind_resource=body.get("bind_resource"),
        parameters=body.get("parameters"),
        context=body.get("context"),
        predecessor_binding_id=body.get("predecessor_binding_id"),
        identity=identity,
    )
