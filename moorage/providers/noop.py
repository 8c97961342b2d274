"""The ``noop`` provider: no I/O, for tests and benchmarks of the broker and the engine.

Why: exercising the operation engine (async polling, durable progress, failures) needs a
backend whose behaviour the test chooses through parameters:

* ``steps`` (int, default 0) and ``step_seconds`` (float): provision, update and bind
  raise ``TemporaryError(step_seconds, "step k of n", outputs={"step": k + 1})`` until the
  ``step`` in the outputs reaches ``steps``, so progress is recorded between calls;
* ``fail`` (string): provision, update and bind raise ``PermanentError(fail)``;
* ``fail_delete`` (string): deprovision and unbind raise ``PermanentError(fail_delete)``;
* ``delete_steps`` (int, default 0): the same steps for deprovision (a slow delete).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext, Provider, ProvisionResult
from moorage.errors import InvalidParametersError, PermanentError, TemporaryError


class NoopProvider(Provider):
    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        return ProvisionResult(outputs=self._advance(ctx.parameters, ctx.outputs, "provision"))

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        return ProvisionResult(outputs=self._advance(ctx.parameters, ctx.outputs, "update"))

    def deprovision(self, ctx: InstanceContext) -> None:
        slow = {**ctx.parameters, "steps": ctx.parameters.get("delete_steps", 0)}
        self._advance(slow, ctx.outputs, "deprovision", fail_key="fail_delete")

    def bind(self, ctx: BindingContext) -> BindResult:
        outputs = self._advance(ctx.parameters, ctx.outputs, "bind")
        short = hashlib.sha256(ctx.binding_id.encode()).hexdigest()[:12]
        password = str(ctx.outputs.get("password") or secrets.token_urlsafe(18))
        username = f"noop-{short}"
        return BindResult(
            credentials={
                "uri": f"noop://{username}:{password}@noop.invalid/{short}",
                "username": username,
                "password": password,
            },
            outputs={**outputs, "username": username, "password": password},
        )

    def unbind(self, ctx: BindingContext) -> None:
        _fail_if_asked(ctx.parameters, "fail_delete")

    @staticmethod
    def _advance(
        parameters: Mapping[str, Any], outputs: Mapping[str, Any], action: str, fail_key: str = "fail"
    ) -> dict[str, Any]:
        """Raise TemporaryError until ``steps`` calls have been recorded; the outputs when done.

        A finished action drops its ``step`` counter (keeping ``<action>_steps``), so the
        next action on the same instance (an update after the provision) counts from 0.
        """
        _fail_if_asked(parameters, fail_key)
        steps = parameters.get("steps", 0)
        delay = parameters.get("step_seconds", 0.0)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise InvalidParametersError(f"steps must be a non-negative integer, not {steps!r}")
        if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
            raise InvalidParametersError(f"step_seconds must be a non-negative number, not {delay!r}")
        done = int(outputs.get("step", 0))
        if done < steps:
            raise TemporaryError(float(delay), f"step {done} of {steps}", outputs={"step": done + 1})
        finished = {k: v for k, v in outputs.items() if k != "step"}
        finished[f"{action}_steps"] = steps
        return finished


def _fail_if_asked(parameters: Mapping[str, Any], key: str = "fail") -> None:
    message = parameters.get(key)
    if message:
        raise PermanentError(str(message))
