"""The loaded catalog: typed, immutable offerings and plans.

Why separate from the loader: everything after start-up (broker, operation engine,
providers) works with these frozen objects and never sees YAML or marshmallow.
``to_osb()`` renders exactly what the OSB ``/v2/catalog`` shows; provider-only keys
(``provider``, ``config``, ``asynchronous``) stay inside Moorage, and ``credentials_env``
is published as the vendor extension ``metadata.moorage.credentials_env`` so a Moorage
platform knows which config vars a binding's credentials become.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    description: str
    free: bool = True
    bindable: bool | None = None
    plan_updateable: bool | None = None
    binding_rotatable: bool = False
    maintenance_version: str | None = None
    maintenance_description: str | None = None
    maximum_polling_duration: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: ``{"service_instance": {"create": {"parameters": {...}}, ...}, ...}`` as in OSB.
    schemas: Mapping[str, Any] = field(default_factory=dict)
    #: Provider settings for this plan (sizes, regions, limits): never shown to platforms.
    config: Mapping[str, Any] = field(default_factory=dict)
    #: The plan cannot finish within a request: it needs ``accepts_incomplete=true``.
    asynchronous: bool = False

    def schema(self, resource: str, action: str) -> Mapping[str, Any] | None:
        """The JSON Schema of ``service_instance.create`` etc., or None."""
        return (self.schemas.get(resource) or {}).get(action, {}).get("parameters")

    def to_osb(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "free": self.free,
        }
        if self.bindable is not None:
            out["bindable"] = self.bindable
        if self.plan_updateable is not None:
            out["plan_updateable"] = self.plan_updateable
        if self.binding_rotatable:
            out["binding_rotatable"] = True
        if self.maintenance_version:
            info = {"version": self.maintenance_version}
            if self.maintenance_description:
                info["description"] = self.maintenance_description
            out["maintenance_info"] = info
        if self.maximum_polling_duration:
            out["maximum_polling_duration"] = self.maximum_polling_duration
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        if self.schemas:
            out["schemas"] = self.schemas
        return out


@dataclass(frozen=True)
class Offering:
    id: str
    name: str
    description: str
    provider: str
    bindable: bool
    plans: tuple[Plan, ...]
    tags: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    plan_updateable: bool = False
    instances_retrievable: bool = True
    bindings_retrievable: bool = True
    allow_context_updates: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: How binding credentials become config vars in an app:
    #: ``{"prefix": "DATABASE", "url": "uri", "parts": {"USER": "username", ...}}``.
    credentials_env: Mapping[str, Any] = field(default_factory=dict)
    #: Provider settings shared by all plans (plan ``config`` wins key by key).
    config: Mapping[str, Any] = field(default_factory=dict)
    examples: tuple[Mapping[str, Any], ...] = ()
    source: Path | None = None

    def plan(self, plan_id: str) -> Plan | None:
        for plan in self.plans:
            if plan.id == plan_id:
                return plan
        return None

    def plan_named(self, name: str) -> Plan | None:
        for plan in self.plans:
            if plan.name == name:
                return plan
        return None

    def is_bindable(self, plan: Plan) -> bool:
        return self.bindable if plan.bindable is None else plan.bindable

    def is_plan_updateable(self, plan: Plan) -> bool:
        return self.plan_updateable if plan.plan_updateable is None else plan.plan_updateable

    def plan_config(self, plan: Plan) -> dict[str, Any]:
        return {**self.config, **plan.config}

    def to_osb(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "bindable": self.bindable,
            "plan_updateable": self.plan_updateable,
            "instances_retrievable": self.instances_retrievable,
            "bindings_retrievable": self.bindings_retrievable,
            "plans": [p.to_osb() for p in self.plans],
        }
        if self.tags:
            out["tags"] = list(self.tags)
        if self.requires:
            out["requires"] = list(self.requires)
        if self.allow_context_updates:
            out["allow_context_updates"] = True
        metadata = dict(self.metadata)
        if self.credentials_env:
            # A vendor extension: how a Moorage platform turns credentials into config vars.
            metadata["moorage"] = {
                **metadata.get("moorage", {}),
                "credentials_env": dict(self.credentials_env),
            }
        if metadata:
            out["metadata"] = metadata
        return out


@dataclass(frozen=True)
class Catalog:
    offerings: tuple[Offering, ...]

    def offering(self, offering_id: str) -> Offering | None:
        for offering in self.offerings:
            if offering.id == offering_id:
                return offering
        return None

    def offering_named(self, name: str) -> Offering | None:
        for offering in self.offerings:
            if offering.name == name:
                return offering
        return None

    def to_osb(self) -> dict[str, Any]:
        return {"services": [o.to_osb() for o in self.offerings]}
