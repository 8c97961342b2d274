"""The Provider boundary: what every backend (PostgreSQL, Redis, S3, RDS, …) implements.

Why this shape: the operation engine calls a provider method again and again until it
returns, possibly in another process after a crash. So every method must be idempotent
and re-entrant: look before you create, treat "already exists (and is mine)" as done,
and treat "not found" as success in ``deprovision``/``unbind``. A step that cannot finish
now raises :class:`~moorage.errors.TemporaryError` with a delay (and optionally outputs to
checkpoint) instead of blocking. Providers never touch Moorage's database: they get a
frozen context and return data, which the engine stores (encrypted).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from moorage.catalog.model import Offering, Plan
from moorage.errors import PermanentError, ProviderError, TemporaryError
from moorage.settings import Settings

__all__ = [
    "BindResult",
    "BindingContext",
    "Endpoint",
    "InstanceContext",
    "PermanentError",
    "Provider",
    "ProviderError",
    "ProvisionResult",
    "TemporaryError",
]


@dataclass(frozen=True)
class InstanceContext:
    instance_id: str
    offering: Offering
    plan: Plan
    #: The plan's JSON-Schema defaults merged with the user's parameters (validated).
    parameters: Mapping[str, Any]
    #: What earlier calls returned or checkpointed for this instance.
    outputs: Mapping[str, Any]
    settings: Settings
    #: The OSB ``context`` object the platform sent (platform, names, …).
    context: Mapping[str, Any] = field(default_factory=dict)
    #: On update: the plan before the change (equal to ``plan`` when it does not change).
    previous_plan: Plan | None = None
    #: When the operation must be done (epoch seconds; from the plan's
    #: ``maximum_polling_duration``), None without a limit. A provider that explains a
    #: timeout itself (with the backend's reason) checks this clock, the engine's own.
    deadline: float | None = None

    @property
    def config(self) -> dict[str, Any]:
        """Offering ``config`` overlaid with the plan's."""
        return self.offering.plan_config(self.plan)


@dataclass(frozen=True)
class BindingContext:
    binding_id: str
    instance: InstanceContext
    parameters: Mapping[str, Any]
    #: What earlier calls returned or checkpointed for this binding.
    outputs: Mapping[str, Any]
    #: ``bind_resource`` from the request (``app_guid``, ``route``), if any.
    bind_resource: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    host: str
    ports: Sequence[str]
    protocol: str = "tcp"

    def to_osb(self) -> dict[str, Any]:
        return {"host": self.host, "ports": [str(p) for p in self.ports], "protocol": self.protocol}


@dataclass(frozen=True)
class ProvisionResult:
    #: Kept (encrypted) with the instance and passed back in later contexts.
    outputs: Mapping[str, Any] = field(default_factory=dict)
    dashboard_url: str | None = None


@dataclass(frozen=True)
class BindResult:
    credentials: Mapping[str, Any]
    endpoints: Sequence[Endpoint] = ()
    #: Kept (encrypted) with the binding, e.g. the cloud user name to delete on unbind.
    outputs: Mapping[str, Any] = field(default_factory=dict)


class Provider(ABC):
    """A backend. One object per offering's ``provider`` name per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def provision(self, ctx: InstanceContext) -> ProvisionResult: ...

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        """Apply a plan or parameter change. The default accepts parameter-only changes."""
        return ProvisionResult(outputs=ctx.outputs)

    @abstractmethod
    def deprovision(self, ctx: InstanceContext) -> None: ...

    def bind(self, ctx: BindingContext) -> BindResult:
        raise PermanentError(f"{ctx.instance.offering.name} is not bindable")

    def unbind(self, ctx: BindingContext) -> None:
        return None

    def close(self) -> None:
        """Release connections; called when the process stops."""
        return None
