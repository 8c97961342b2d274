"""Destroying apps and service instances, the two operations that cross both.

Why a module of its own: destroying an app unbinds its services, and destroying a
service unbinds its apps, so each needs ``bindings`` — which itself builds on ``apps``
and ``services``. Putting both teardowns above all three keeps the controller's modules
in layers, with no cycle hidden behind a function-level import.
"""

from __future__ import annotations

import logging
import shutil

from sqlalchemy import select

from moorage.errors import ConflictError, Error, PermissionDeniedError
from moorage.platform import slug_store
from moorage.platform.controller import app_uids, bindings, services
from moorage.platform.controller.apps import find
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.runtime.base import Progress
from moorage.store.apps import Build

log = logging.getLogger(__name__)


def destroy_app(platform: Platform, who: Principal, name: str) -> None:
    """Unbind its services, stop every process, forget the app and its files (owner or admin)."""
    with platform.db.unit_of_work() as s:
        app = find(s, who, name)
        if app.owner_id != who.id and not who.is_admin:
            raise PermissionDeniedError(f"only the owner of {name!r} or an admin can destroy it")
    with platform.app_lock(name, who, "apps:destroy"):
        # Services first: if a broker is down this fails while the app is still whole.
        bindings.unbind_app(platform, who, name)  # its credentials stop working at the broker
        platform.runtime.destroy(name)  # also removes its routes, custom domains included
        with platform.db.unit_of_work() as s:
            app = find(s, who, name)
            refs = list(s.scalars(select(Build.artifact).where(Build.app_id == app.id)))
            app_uids.free(s, app)  # never handed out again: what it still owns stays its own
            s.delete(app)
        _forget_slugs(platform, name, refs)
        shutil.rmtree(platform.slugs_dir / name, ignore_errors=True)
        # Its git repository and build cache too: a new app of that name starts clean.
        data_dir = platform.settings.data_dir
        shutil.rmtree(data_dir / "git" / f"{name}.git", ignore_errors=True)
        shutil.rmtree(data_dir / "build-cache" / name, ignore_errors=True)
    log.info("app destroyed", extra={"app": name, "user": who.username})


def destroy_service(platform: Platform, who: Principal, name: str, unbind: bool, progress: Progress) -> None:
    """Deprovision at the broker, then forget. Refused while bound unless ``unbind``."""
    bound = services.bound_apps(platform, who, name)
    if bound and not unbind:
        raise ConflictError(
            f"{name} is bound to {', '.join(bound)}; unbind it first (`moorage services:unbind {name} -a APP`) "
            "or destroy with --unbind"
        )
    for app in bound:
        bindings.unbind(platform, who, name, app, progress)
    services.deprovision(platform, who, name, progress)


def _forget_slugs(platform: Platform, name: str, refs: list[str]) -> None:
    """Delete the app's slugs from the slug store (S3 too); failures are logged, not raised."""
    try:
        store = slug_store.store_from_settings(platform.settings)
    except Error as exc:
        log.warning("the slugs of %s were not deleted: %s", name, exc.message, extra={"app": name})
        return
    slug_store.forget_app(store, name, refs)
