"""Driving a provider the way the operation engine does, for provider-level tests.

Why: the providers' contract is "called again until it returns; TemporaryError means
call again later with the checkpointed outputs merged in". These helpers load the real
offering files, build the frozen contexts, and loop on TemporaryError with a deadline,
recording every message so a test can assert the waiting path was taken.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from moorage.catalog.loader import load_offering
from moorage.catalog.model import Offering
from moorage.catalog.parameters import validate
from moorage.catalog.provider import BindingContext, InstanceContext
from moorage.errors import TemporaryError
from moorage.settings import Settings

CATALOG = Path(__file__).resolve().parents[2] / "catalog"
T = TypeVar("T")


def offering(name: str, **plan_config: Any) -> Offering:
    """The offering file ``catalog/<name>.yaml``, with plan config overridden for every plan."""
    loaded = load_offering(CATALOG / f"{name}.yaml")
    if not plan_config:
        return loaded
    plans = tuple(replace(p, config={**p.config, **plan_config}) for p in loaded.plans)
    return replace(loaded, plans=plans)


@dataclass
class Run:
    """What a looped call saw: the TemporaryError messages and the final outputs."""

    waits: list[str] = field(default_factory=list)


def until_done(
    call: Callable[[Mapping[str, Any]], T],
    outputs: dict[str, Any],
    timeout: float = 60.0,
    run: Run | None = None,
) -> T:
    """Call ``call(outputs)`` until it returns, merging checkpointed outputs (no real delays)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(dict(outputs))
        except TemporaryError as exc:
            outputs.update(exc.outputs)
            if run is not None:
                run.waits.append(exc.message)
            if time.monotonic() > deadline:
                raise
            time.sleep(min(exc.delay, 0.05))


@dataclass
class Instance:
    """An instance under test: its offering, plan, parameters and accumulated outputs."""

    offering: Offering
    plan_name: str
    settings: Settings
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def ctx(self, plan_name: str | None = None, previous_plan_name: str | None = None) -> InstanceContext:
        plan = self.offering.plan_named(plan_name or self.plan_name)
        assert plan is not None
        schema_params = (
            validate(plan, "service_instance", "create", self.parameters)
            if plan.schema("service_instance", "create")
            else {}
        )
        previous = self.offering.plan_named(previous_plan_name) if previous_plan_name else None
        return InstanceContext(
            instance_id=self.instance_id,
            offering=self.offering,
            plan=plan,
            parameters=schema_params or dict(self.parameters),
            outputs=dict(self.outputs),
            settings=self.settings,
            previous_plan=previous,
        )

    def binding(
        self, binding_id: str | None = None, outputs: Mapping[str, Any] | None = None
    ) -> BindingContext:
        return BindingContext(
            binding_id=binding_id or str(uuid.uuid4()),
            instance=self.ctx(),
            parameters={},
            outputs=dict(outputs or {}),
        )
