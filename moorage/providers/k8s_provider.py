"""The provider side the in-cluster offerings share: an instance is one engine's Workload.

Why: ``k8s-postgresql`` and ``k8s-redis`` provision, update and deprovision by making,
rolling and deleting the same Kubernetes objects (:mod:`moorage.providers.k8s_workload`);
they differ only in their engine and in how a binding becomes a login on the server.
"""

from __future__ import annotations

from moorage.catalog.provider import InstanceContext, Provider, ProvisionResult
from moorage.providers.k8s_workload import Engine, Workload
from moorage.settings import Settings


class WorkloadProvider(Provider):
    """A provider whose instances are its ``engine``'s workloads; a subclass adds the bindings."""

    #: The engine of the subclass's offering.
    engine: Engine

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.workload = Workload(settings, self.engine)

    def close(self) -> None:
        self.workload.close()

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        return self.workload.provision(ctx)

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        return self.workload.update(ctx)

    def deprovision(self, ctx: InstanceContext) -> None:
        self.workload.deprovision(ctx)
