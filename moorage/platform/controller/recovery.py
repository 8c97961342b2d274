"""Bringing apps back after the controller (and with it the local runtime) restarts.

Why here: only the controller knows what *should* run: each app's current release, its
formation and its custom domains. On start it hands those to the runtime again, except
for an app already running its current release with its formation (the supervisor
kept it through the controller's restart: nothing to do); otherwise the runtime keeps
processes that already run that release and starts the missing ones. A
release still marked ``deploying`` was interrupted by the restart: it is marked failed,
so the release before it is the one brought back. Service operations the restart
interrupted are settled next (``service_recovery``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from moorage.errors import ConflictError
from moorage.platform.controller import certs, releases, service_recovery
from moorage.platform.controller.context import Platform
from moorage.platform.runtime.base import ReleaseSpec
from moorage.store.apps import DEPLOYING, FAILED, App, Domain, Release

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Wanted:
    spec: ReleaseSpec
    formation: dict[str, int]
    domains: list[str]


def resume(platform: Platform) -> list[str]:
    """Deploy every app's current release again; returns the names brought back."""
    _fail_interrupted(platform)
    wanted: list[_Wanted] = []
    with platform.db.unit_of_work() as s:
        for app in s.scalars(select(App).order_by(App.name)):
            spec = releases.spec_of(platform, s, app, releases.current(s, app))
            if spec is None:
                continue
            domains = [d.domain for d in s.scalars(select(Domain).where(Domain.app_id == app.id))]
            wanted.append(_Wanted(spec, releases.formation_of(s, app), domains))
    try:
        service_recovery.settle(platform)
    except Exception:  # settling services must not keep the apps down
        log.exception("could not settle interrupted service operations")
    back = []
    for item in wanted:
        name = item.spec.app
        try:
            # Never wait: another controller changing this app is deploying it already.
            with platform.app_lock(name, what="bringing it back after a restart", wait=0):
                if item.domains:
                    platform.runtime.set_domains(name, item.domains)
                certs.publish(platform, name)
                if not _already_running(platform, item):
                    platform.runtime.deploy(item.spec, item.formation, lambda line: None)
        except ConflictError as exc:
            log.info("not bringing %s back: %s", name, exc, extra={"app": name})
            continue
        except Exception as exc:  # one broken app must not keep the others down
            log.warning("could not bring %s back: %s", name, exc, extra={"app": name})
            continue
        back.append(name)
        log.info("app brought back", extra={"app": name, "release": item.spec.version})
    return back


def _already_running(platform: Platform, item: _Wanted) -> bool:
    """Every process of the formation is up (or restarting) on the current release."""
    counts: dict[str, int] = {}
    for process in platform.runtime.status(item.spec.app):
        if process.release != item.spec.version or process.state in ("stopping", "down"):
            return False
        counts[process.type] = counts.get(process.type, 0) + 1
    return counts == {t: c for t, c in item.formation.items() if c > 0}


def _fail_interrupted(platform: Platform) -> None:
    """Mark failed the deploys a restart interrupted, not those another controller runs.

    With several controllers on one state, a release is ``deploying`` while a replica
    holds its app's lock; only a release whose lock is free was left behind.
    """
    with platform.db.sessions() as s:
        rows = list(
            s.execute(
                select(Release.id, App.name)
                .join(App, App.id == Release.app_id)
                .where(Release.status == DEPLOYING)
            )
        )
    for release_id, name in rows:
        try:
            with platform.app_lock(name, what="settling an interrupted deploy", wait=0):
                with platform.db.unit_of_work() as s:
                    rel = s.get(Release, release_id)
                    if rel is not None and rel.status == DEPLOYING:
                        rel.status = FAILED
                        rel.failure = "interrupted: the controller stopped during the deploy"
        except ConflictError as exc:
            log.info("leaving the deploy of %s to its controller: %s", name, exc, extra={"app": name})
