"""Helpers for the local services' tests: contexts built from the real offering files.

Parameters go through the catalog's JSON-Schema validation (defaults merged), as the
broker does, so the tests call the providers with what they would really receive.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from moorage.catalog.loader import load_offering
from moorage.catalog.model import Offering
from moorage.catalog.parameters import validate
from moorage.catalog.provider import BindingContext, InstanceContext
from moorage.embedded.redis_supervisor import DedicatedServers
from moorage.settings import Settings
from tests.fixtures.broker import MAIN_CATALOG, RunningBroker, broker_settings, start_broker
from tests.fixtures.servers import RunningServer, make_server_dir

ROOT = Path(__file__).resolve().parents[2]


def instance_ctx(
    offering: Offering,
    plan: str,
    settings: Settings,
    *,
    instance_id: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    action: str = "create",
) -> InstanceContext:
    chosen = offering.plan_named(plan)
    assert chosen is not None, plan
    return InstanceContext(
        instance_id=instance_id or str(uuid.uuid4()),
        offering=offering,
        plan=chosen,
        parameters=validate(chosen, "service_instance", action, dict(parameters or {})),
        outputs=dict(outputs or {}),
        settings=settings,
    )


def binding_ctx(
    instance: InstanceContext,
    *,
    binding_id: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
) -> BindingContext:
    return BindingContext(
        binding_id=binding_id or str(uuid.uuid4()),
        instance=instance,
        parameters=validate(instance.plan, "service_binding", "create", dict(parameters or {})),
        outputs=dict(outputs or {}),
    )


@pytest.fixture(scope="session")
def postgresql_offering() -> Offering:
    return load_offering(ROOT / "catalog" / "postgresql.yaml")


@pytest.fixture(scope="session")
def redis_offering() -> Offering:
    return load_offering(ROOT / "catalog" / "redis.yaml")


@pytest.fixture(scope="session")
def noop_offering() -> Offering:
    return load_offering(ROOT / "tests" / "catalog" / "noop.yaml")


@pytest.fixture
def pg_settings(postgres_server: RunningServer, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path).with_group(services={"postgres_admin_url": postgres_server.admin_url})


@pytest.fixture
def redis_settings(redis_server: RunningServer, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path).with_group(services={"redis_admin_url": redis_server.admin_url})


@pytest.fixture
def dedicated_data_dir() -> Iterator[Path]:
    """A data dir the service user can reach (pytest's are root's only); its Redis servers stopped after."""
    path = make_server_dir("moorage-test-dedicated-")
    yield path
    DedicatedServers(path).stop()  # servers outlive in-process brokers: stop what a test left
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_dedicated_broker(
    dedicated_data_dir: Path, redis_server: RunningServer
) -> Iterator[Callable[..., RunningBroker]]:
    """Brokers with the real catalog (and the dedicated Redis supervisor) on ``dedicated_data_dir``."""
    started: list[RunningBroker] = []

    def factory(catalog_dirs: list[Path] | None = None) -> RunningBroker:
        services = {"redis_admin_url": redis_server.admin_url}
        settings = broker_settings(dedicated_data_dir, catalog_dirs or [MAIN_CATALOG], services=services)
        broker = start_broker(settings)
        started.append(broker)
        return broker

    yield factory
    for broker in started:
        broker.stop()
