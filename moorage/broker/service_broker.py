"""openbrokerapi's ``ServiceBroker`` interface, answered by :mod:`instances` and :mod:`bindings`.

Why a thin adapter: openbrokerapi owns the routes and the response classes; all the
decisions live in ``Instances``/``Updates``/``Bindings``. They are handed the request
:mod:`compliance` parsed and checked (an :mod:`osb_request` object) in place of
openbrokerapi's detail objects, which drop fields such as ``maintenance_info`` and
``predecessor_binding_id``; this adapter is the one place that fetches it.
"""

from __future__ import annotations

from typing import Any

from openbrokerapi.service_broker import ServiceBroker

from moorage.broker.bindings import Bindings
from moorage.broker.compliance import current_request
from moorage.broker.instances import Instances
from moorage.broker.osb_request import BindRequest, DeleteRequest, ProvisionRequest, UpdateRequest
from moorage.broker.updates import Updates
from moorage.catalog.model import Catalog


class _Json(dict):  # type: ignore[type-arg]
    """A dict that openbrokerapi serialises as is and can also read by attribute (``plan.id``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return _Json({k: _wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class MoorageBroker(ServiceBroker):
    def __init__(self, catalog: Catalog, instances: Instances, updates: Updates, bindings: Bindings) -> None:
        self._catalog = [_wrap(o) for o in catalog.to_osb()["services"]]
        self.instances = instances
        self.updates = updates
        self.bindings = bindings

    def catalog(self) -> Any:
        return self._catalog

    def provision(self, instance_id: str, details: Any, async_allowed: bool, **kwargs: Any) -> Any:
        return self.instances.provision(instance_id, current_request(ProvisionRequest), async_allowed)

    def update(self, instance_id: str, details: Any, async_allowed: bool, **kwargs: Any) -> Any:
        return self.updates.update(instance_id, current_request(UpdateRequest), async_allowed)

    def deprovision(self, instance_id: str, details: Any, async_allowed: bool, **kwargs: Any) -> Any:
        return self.instances.deprovision(instance_id, current_request(DeleteRequest), async_allowed)

    def get_instance(self, instance_id: str, **kwargs: Any) -> Any:
        return self.instances.get(instance_id)

    def last_operation(self, instance_id: str, operation_data: str | None, **kwargs: Any) -> Any:
        return self.instances.last_operation(instance_id, operation_data)

    def bind(
        self, instance_id: str, binding_id: str, details: Any, async_allowed: bool, **kwargs: Any
    ) -> Any:
        return self.bindings.bind(instance_id, binding_id, current_request(BindRequest), async_allowed)

    def unbind(
        self, instance_id: str, binding_id: str, details: Any, async_allowed: bool, **kwargs: Any
    ) -> Any:
        return self.bindings.unbind(instance_id, binding_id, current_request(DeleteRequest), async_allowed)

    def get_binding(self, instance_id: str, binding_id: str, **kwargs: Any) -> Any:
        return self.bindings.get(instance_id, binding_id)

    def last_binding_operation(
        self, instance_id: str, binding_id: str, operation_data: str | None, **kwargs: Any
    ) -> Any:
        return self.bindings.last_operation(instance_id, binding_id, operation_data)
