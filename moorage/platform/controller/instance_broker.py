"""The broker behind a service instance: its offering and plan, and a client for one call.

Why one place: provisioning, updating, deprovisioning, binding and unbinding all read
the instance's broker, offering and plan from the cached catalog, leave the database
session before talking HTTP (a broker call can take minutes, and no session or row
lock may be held that long), and must close the HTTP client whatever happens.
:func:`connected` does exactly that, once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from moorage.errors import NotFoundError
from moorage.platform.controller import brokers
from moorage.platform.controller.context import Platform
from moorage.platform.osb_client import OsbClient
from moorage.store.services import Broker, ServiceInstance


def offering_of(session: Session, inst: ServiceInstance) -> tuple[Broker, dict[str, Any], dict[str, Any]]:
    """The instance's broker, and its offering and plan from the cached catalog."""
    broker = session.get(Broker, inst.broker_id)
    assert broker is not None
    for offering in (broker.catalog or {}).get("services") or []:
        if offering.get("id") == inst.offering_id:
            for plan in offering.get("plans") or []:
                if plan.get("id") == inst.plan_id:
                    return broker, offering, plan
    # The broker dropped it from its catalog: enough to address the instance still.
    return (
        broker,
        {"id": inst.offering_id, "name": inst.offering_name},
        {"id": inst.plan_id, "name": inst.plan_name},
    )


@dataclass(frozen=True)
class AtBroker:
    """What a call about one instance needs: the client, and the catalog entries it names."""

    client: OsbClient
    broker: str
    offering: dict[str, Any]
    plan: dict[str, Any]
    instance_name: str


@contextlib.contextmanager
def connected(
    platform: Platform, instance_id: str, on_progress: Callable[[str], None] | None = None
) -> Iterator[AtBroker]:
    """A client for the broker of ``instance_id`` (closed on leaving), told ``on_progress``."""
    with platform.db.sessions() as s:
        inst = s.get(ServiceInstance, instance_id)
        if inst is None:
            raise NotFoundError(f"service instance {instance_id} no longer exists")
        broker, offering, plan = offering_of(s, inst)
        name = inst.name
        s.expunge(broker)
    with brokers.connection(platform, broker) as client:
        client.on_progress = on_progress
        yield AtBroker(client, broker.name, offering, plan, name)
