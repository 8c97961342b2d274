"""Settling service instances and bindings whose operation a controller restart interrupted.

Why: ``services:create``, ``bind`` and ``unbind`` run in the controller's threads; if the
controller stops in the middle, their rows stay ``creating``/``binding``/… and nothing
would ever finish them. On start (after ``recovery.resume`` has marked interrupted
deploys failed) each is settled from what is known for sure:

- an instance being created, updated or deleted: the platform no longer knows how far
  the broker got, so it says so — ``failed`` (create, delete) or back to ``ready``
  (update) with a description telling the user what to run; ``services:destroy`` works
  on a failed instance (the broker answers 410 when nothing exists);
- a binding being made: if the app's current release carries its vars, the release went
  out and the binding is ``bound``; otherwise the app never used it, so it is unbound at
  the broker (orphan mitigation) and forgotten;
- a binding being removed: if the app's current release still carries its vars, the
  release without them never went out and it stays ``bound``; otherwise it is unbound at
  the broker and forgotten, as the command would have done.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from moorage.errors import Error
from moorage.platform.controller import binding_saga, releases
from moorage.platform.controller.context import Platform, Principal
from moorage.store.apps import App
from moorage.store.services import (
    BINDING,
    BOUND,
    CREATING,
    DELETING,
    INSTANCE_FAILED,
    READY,
    UNBINDING,
    UPDATING,
    ServiceBinding,
    ServiceInstance,
)

log = logging.getLogger(__name__)

#: Platform-initiated calls (orphan mitigation) carry no user.
SYSTEM = Principal(id=0, username="moorage", is_admin=True)

_INTERRUPTED = {
    CREATING: (
        INSTANCE_FAILED,
        "interrupted: the controller restarted while creating it; "
        "run `moorage services:destroy {name}`, then create it again",
    ),
    DELETING: (
        INSTANCE_FAILED,
        "interrupted: the controller restarted while deleting it; "
        "run `moorage services:destroy {name}` again",
    ),
    UPDATING: (
        READY,
        "interrupted: the controller restarted during an update; check the plan with "
        "`moorage services:info {name}` and run `moorage services:update` again if needed",
    ),
}


def settle(platform: Platform) -> None:
    """Settle every interrupted instance and binding (see the module docstring)."""
    to_unbind: list[str] = []
    with platform.db.unit_of_work() as s:
        for inst in s.scalars(select(ServiceInstance).where(ServiceInstance.state.in_(list(_INTERRUPTED)))):
            state, description = _INTERRUPTED[inst.state]
            inst.state, inst.description = state, description.format(name=inst.name)
            log.warning("service instance was interrupted: %s", inst.state, extra={"instance": inst.id})
        for binding in s.scalars(
            select(ServiceBinding).where(ServiceBinding.state.in_([BINDING, UNBINDING]))
        ):
            app = s.get(App, binding.app_id)
            config = releases.config_of(platform, s, releases.current(s, app)) if app else {}
            in_release = bool(binding.var_names) and all(name in config for name in binding.var_names)
            if in_release:
                binding.state = BOUND
            else:
                to_unbind.append(binding.id)
    for binding_id in to_unbind:
        try:
            binding_saga.unbind_at_broker(platform, SYSTEM, binding_id)
        except Error as exc:  # the broker may be down: keep the row, the user can unbind later
            log.warning("could not unbind an interrupted binding: %s", exc, extra={"binding": binding_id})
            continue
        binding_saga.forget(platform, binding_id)
        log.info("interrupted binding unbound at the broker", extra={"binding": binding_id})
