"""What the providers that carve tenants out of one server they administer have in common.

Why: the shared PostgreSQL, MySQL and Redis offerings each give an instance a part of one
server (a database, a key prefix) and each binding a login in it. They name those parts
by hashing the ids, so that every call finds what an earlier call (perhaps in a process
that was killed) made, and they refuse the same things in the same words: deleting an
instance whose logins are still in use, binding to one that was never made, and a
connection limit above the plan's. The database ones also keep idle admin connections
to their server and converge an instance the same way on provision and on update
(:class:`SharedServerProvider`).
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from typing import Generic

from moorage.catalog.provider import InstanceContext, Provider, ProvisionResult
from moorage.errors import InvalidParametersError, PermanentError
from moorage.providers.admin_pool import AdminPool, Conn
from moorage.settings import Settings


class SharedServerProvider(Provider, Generic[Conn]):
    """Tenants on one server reached as its administrator, through ``self._pool``."""

    #: Idle admin connections kept for reuse (a new one costs a handshake and a login).
    IDLE_CONNECTIONS = 4

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._pool: AdminPool[Conn] = AdminPool(self.usable, per_key=self.IDLE_CONNECTIONS)

    @staticmethod
    @abstractmethod
    def usable(conn: Conn) -> bool:
        """Whether an idle connection may serve again (the driver has not seen it close or break)."""

    def close(self) -> None:
        self._pool.close()

    @abstractmethod
    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        """Create the tenant or converge it to the plan and parameters; idempotent."""

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        """The same convergence as ``provision``, to the new plan and parameters."""
        return self.provision(ctx)


def short_hash(value: str, length: int) -> str:
    """``length`` hex digits of the SHA-256 of ``value``: a valid identifier part for any id."""
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def refuse_while_bound(instance_id: str, bindings: int) -> None:
    """Deleting the tenant would cut off apps that still use its logins; the broker must unbind first."""
    if bindings:
        raise PermanentError(
            f"instance {instance_id} still has {bindings} binding(s); "
            "unbind them before deleting the instance"
        )


def refuse_unprovisioned(instance_id: str, has_database: bool) -> None:
    """A login on a database that does not exist would be handed out and fail at first use."""
    if not has_database:
        raise PermanentError(
            f"instance {instance_id} has no database (was it provisioned?); cannot bind to it"
        )


def requested_connection_limit(ctx: InstanceContext, plan_limit: int | None) -> int | None:
    """The ``connection_limit`` parameter, checked against the plan's limit; None when not asked for.

    What a missing parameter or plan limit means differs between the offerings, so the
    callers decide that; the checks, and their words, are the same.
    """
    wanted = ctx.parameters.get("connection_limit")
    if wanted is None:
        return None
    if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1:
        raise InvalidParametersError(f"connection_limit must be a positive integer, not {wanted!r}")
    if plan_limit is not None and wanted > plan_limit:
        raise InvalidParametersError(
            f"connection_limit {wanted} is more than plan {ctx.plan.name} allows ({plan_limit}); "
            "ask for less or choose a larger plan"
        )
    return wanted
