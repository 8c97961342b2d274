"""The noop provider: durable step-by-step progress and failures chosen by parameters."""

from __future__ import annotations

from dataclasses import replace

import pytest

from moorage.catalog.model import Offering
from moorage.errors import InvalidParametersError, PermanentError, TemporaryError
from moorage.providers.noop import NoopProvider
from moorage.settings import Settings
from tests.services.conftest import binding_ctx, instance_ctx


@pytest.fixture
def provider() -> NoopProvider:
    return NoopProvider(Settings())


def test_provision_reports_each_step_and_finishes_when_all_are_recorded(
    provider: NoopProvider, noop_offering: Offering
) -> None:
    ctx = instance_ctx(noop_offering, "async", Settings(), parameters={"steps": 3, "step_seconds": 0.25})
    seen = []
    while True:
        try:
            result = provider.provision(ctx)
            break
        except TemporaryError as exc:
            seen.append((exc.delay, exc.message, exc.outputs))
            ctx = replace(ctx, outputs={**ctx.outputs, **exc.outputs})  # what the engine saves
    assert seen == [
        (0.25, "step 0 of 3", {"step": 1}),
        (0.25, "step 1 of 3", {"step": 2}),
        (0.25, "step 2 of 3", {"step": 3}),
    ]
    assert result.outputs == {"provision_steps": 3}

    update = replace(ctx, outputs=result.outputs)  # an update counts its own steps
    with pytest.raises(TemporaryError, match="step 0 of 3"):
        provider.update(update)


def test_without_steps_everything_finishes_at_once(provider: NoopProvider, noop_offering: Offering) -> None:
    ctx = instance_ctx(noop_offering, "sync", Settings())
    assert provider.provision(ctx).outputs == {"provision_steps": 0}
    binding = binding_ctx(ctx)
    result = provider.bind(binding)
    assert result.credentials["username"].startswith("noop-")
    assert result.credentials["password"]
    assert provider.bind(replace(binding, outputs=result.outputs)).credentials == result.credentials
    provider.unbind(binding)
    provider.deprovision(ctx)


def test_fail_and_fail_delete_raise_permanent_errors_with_the_message(
    provider: NoopProvider, noop_offering: Offering
) -> None:
    ctx = instance_ctx(noop_offering, "sync", Settings(), parameters={"fail": "quota exceeded"})
    for call in (provider.provision, provider.update):
        with pytest.raises(PermanentError, match="^quota exceeded$"):
            call(ctx)
    provider.deprovision(ctx)  # "fail" is about creating, not deleting
    with pytest.raises(PermanentError, match="bind refused"):
        provider.bind(binding_ctx(ctx, parameters={"fail": "bind refused"}))

    doomed = instance_ctx(noop_offering, "sync", Settings(), parameters={"fail_delete": "still in use"})
    provider.provision(doomed)
    binding = binding_ctx(doomed, parameters={"fail_delete": "sessions open"})
    provider.bind(binding)
    with pytest.raises(PermanentError, match="^sessions open$"):
        provider.unbind(binding)
    with pytest.raises(PermanentError, match="^still in use$"):
        provider.deprovision(doomed)


def test_bad_steps_are_invalid_parameters(provider: NoopProvider, noop_offering: Offering) -> None:
    ctx = replace(instance_ctx(noop_offering, "sync", Settings()), parameters={"steps": -1})
    with pytest.raises(InvalidParametersError, match="steps must be a non-negative integer"):
        provider.provision(ctx)
