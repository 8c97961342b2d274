"""The release ledger: config changes, builds and rollbacks each append one release.

Why append-only: a release is the pair (build, config) that was live at version N, so
"what ran when, and who changed it" is always answerable and rolling back is just a
new release pointing at an older pair. A release is recorded first (``deploying``),
then the runtime deploys it; if that fails the release is marked ``failed`` and the
previous one keeps serving, and every later read skips failed releases.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.errors import Error, InvalidParametersError, NotFoundError, UnprocessableError
from moorage.platform.controller import binding_files, slug_links
from moorage.platform.controller.apps import find
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.controller.service_vars import owned_vars
from moorage.platform.runtime.base import Progress, ReleaseSpec
from moorage.store.apps import DEPLOYING, FAILED, SUCCEEDED, App, Build, ConfigVars, Formation, Release, User

log = logging.getLogger(__name__)

#: Shown (not stored) for the live release while its processes crash-loop.
CRASHED = "crashed"
#: The Procfile type Heroku runs once per release, before its processes start (migrations).
RELEASE_TASK = "release"


def current(session: Session, app: App) -> Release:
    """The newest release that did not fail (there is always v1)."""
    rel = session.scalar(
        select(Release)
        .where(Release.app_id == app.id, Release.status != FAILED)
        .order_by(Release.version.desc())
        .limit(1)
    )
    assert rel is not None, "every app has v1"
    return rel


def config_of(platform: Platform, session: Session, release: Release) -> dict[str, str]:
    row = session.get(ConfigVars, release.config_id)
    return dict(platform.encryptor.decrypt_json(row.values_enc if row else None))


def formation_of(session: Session, app: App) -> dict[str, int]:
    rows = session.scalars(select(Formation).where(Formation.app_id == app.id))
    return {f.process_type: f.count for f in rows}


def save_formation(session: Session, app: App, counts: Mapping[str, int]) -> None:
    existing = {
        f.process_type: f for f in session.scalars(select(Formation).where(Formation.app_id == app.id))
    }
    for ptype, row in existing.items():
        if ptype not in counts:
            session.delete(row)
    for ptype, count in counts.items():
        if ptype in existing:
            existing[ptype].count = count
        else:
            session.add(Formation(app_id=app.id, process_type=ptype, count=count))


def spec_of(platform: Platform, session: Session, app: App, release: Release) -> ReleaseSpec | None:
    """What the runtime needs to run ``release``; ``None`` while the app has no build."""
    if release.build_id is None:
        return None
    build = session.get(Build, release.build_id)
    assert build is not None
    bound = binding_files.project(config_of(platform, session, release))
    env = bound.env
    env.update(
        {
            "MOORAGE_APP": app.name,
            "MOORAGE_RELEASE": f"v{release.version}",
            "SOURCE_VERSION": build.source_version,
        }
    )
    return ReleaseSpec(
        app=app.name,
        version=release.version,
        slug=build.artifact,
        env=env,
        processes=dict(build.procfile),
        source_version=build.source_version,
        owner=owner.username if (owner := session.get(User, app.owner_id)) else "",
        binding_files=bound.files,
        binding_paths=bound.paths,
        uid=app.uid,
        slug_url=slug_links.for_release(platform, app.name, release.version, build.artifact),
    )


def describe(
    platform: Platform, session: Session, release: Release, with_config: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": release.version,
        "summary": release.summary,
        "status": release.status,
        "failed": release.status == FAILED,
        "failure": release.failure,
        "created_by": release.created_by,
        "created": release.created_at.isoformat(),
        "build": None,
    }
    if release.build_id is not None:
        build = session.get(Build, release.build_id)
        if build is not None:
            out["build"] = {
                "id": build.id,
                "source_version": build.source_version,
                "procfile": build.procfile,
                "created": build.created_at.isoformat(),
            }
    if with_config:
        out["config"] = config_of(platform, session, release)
    return out


def record(
    platform: Platform,
    who: Principal,
    name: str,
    summary: str,
    *,
    build_id: str | None,
    config_id: int | None = None,
    config_values: Mapping[str, str] | None = None,
    progress: Progress,
) -> dict[str, Any]:
    """Append a release and deploy it. The caller holds the app lock.

    Raises UnprocessableError when the deploy fails; the release is then marked failed.
    """
    if (config_id is None) == (config_values is None):
        raise ValueError("give exactly one of config_id and config_values")
    version, spec, formation = _append(
        platform, who, name, summary, build_id=build_id, config_id=config_id, config_values=config_values
    )
    log.info("release recorded", extra={"app": name, "release": version})
    if spec is None:
        progress(
            f"moorage[release]: v{version} recorded: {summary} (nothing to deploy until the first build)"
        )
    else:
        _deploy(platform, name, version, summary, spec, formation, progress)
    return _reload(platform, who, name, version)


def _append(
    platform: Platform,
    who: Principal,
    name: str,
    summary: str,
    *,
    build_id: str | None,
    config_id: int | None,
    config_values: Mapping[str, str] | None,
) -> tuple[int, ReleaseSpec | None, dict[str, int]]:
    """The ledger's side of ``record``, in one transaction: the config row (when new
    values are given), the release row, and the formation the release's process types
    call for. Returns the version and what to deploy (no spec before the first build)."""
    with platform.db.unit_of_work() as s:
        app = find(s, who, name)
        latest = s.scalar(
            select(Release.version).where(Release.app_id == app.id).order_by(Release.version.desc())
        )
        if config_id is None:
            keys = set(config_values or {})
            row = ConfigVars(
                app_id=app.id, values_enc=platform.encryptor.encrypt_json(dict(config_values or {}))
            )
            s.add(row)
            s.flush()
            config_id = row.id
        else:
            row = s.get(ConfigVars, config_id)
            keys = set(platform.encryptor.decrypt_json(row.values_enc if row else None))
        release = Release(
            app_id=app.id,
            version=(latest or 0) + 1,
            summary=summary,
            status=DEPLOYING if build_id else SUCCEEDED,
            build_id=build_id,
            config_id=config_id,
            service_vars=sorted(keys & set(owned_vars(s, app.id))),
            created_by=who.username,
        )
        s.add(release)
        s.flush()
        spec = spec_of(platform, s, app, release)
        formation = formation_of(s, app)
        if spec is not None:
            formation = _formation_for(formation, spec.processes)
            save_formation(s, app, formation)
        return release.version, spec, formation


def _deploy(
    platform: Platform,
    name: str,
    version: int,
    summary: str,
    spec: ReleaseSpec,
    formation: Mapping[str, int],
    progress: Progress,
) -> None:
    """Run the release phase, then roll the release out; a failure of either marks the
    release failed and leaves the previous one serving."""
    try:
        if RELEASE_TASK in spec.processes:
            _run_release_task(platform, spec, progress)
        progress(f"moorage[deploy]: deploying v{version} ({summary})")
        platform.runtime.deploy(spec, formation, progress)
    except Exception as exc:  # the task's or the runtime's failure becomes the release's
        reason = (
            exc.message
            if isinstance(exc, Error)
            else "internal error in the runtime (see the controller log)"
        )
        if not isinstance(exc, Error):
            log.exception("runtime deploy crashed", extra={"app": name, "release": version})
        _finish(platform, name, version, FAILED, reason)
        progress(f"moorage[deploy]: v{version} failed: {reason}")
        raise UnprocessableError(
            f"v{version} of {name} failed to deploy: {reason}; the previous release keeps serving",
            release=version,
        ) from None
    _finish(platform, name, version, SUCCEEDED, None)
    progress(f"moorage[deploy]: v{version} is live")


def _run_release_task(platform: Platform, spec: ReleaseSpec, progress: Progress) -> None:
    """Heroku's release phase: the ``release:`` command, once, before any process starts.

    It runs for every release that has one (a build, a config change, a service binding,
    a rollback), with that release's code and config, so migrations see the new
    ``DATABASE_URL`` before the new code serves. A non-zero exit fails the release.
    """
    command = spec.processes[RELEASE_TASK]
    progress(f"moorage[release]: running the release task of v{spec.version}: {command}")
    platform.runtime.release_task(
        spec,
        command,
        platform.settings.platform.build_timeout_seconds,
        lambda line: progress(f"moorage[release]: {line}"),
    )


def _formation_for(formation: Mapping[str, int], processes: Mapping[str, str]) -> dict[str, int]:
    """Keep counts of the types the Procfile still has; start one web on the first deploy."""
    counts = {t: c for t, c in formation.items() if t in processes and t != RELEASE_TASK}
    if not formation and "web" in processes:
        counts["web"] = 1
    return counts


def _finish(platform: Platform, name: str, version: int, status: str, failure: str | None) -> None:
    with platform.db.unit_of_work() as s:
        app = s.scalar(select(App).where(App.name == name))
        if app is None:
            return
        rel = s.scalar(select(Release).where(Release.app_id == app.id, Release.version == version))
        if rel is not None:
            rel.status = status
            rel.failure = failure


def _reload(platform: Platform, who: Principal, name: str, version: int) -> dict[str, Any]:
    with platform.db.unit_of_work() as s:
        app = find(s, who, name)
        rel = s.scalar(select(Release).where(Release.app_id == app.id, Release.version == version))
        assert rel is not None
        return describe(platform, s, rel)


def _mark_crashed(platform: Platform, name: str, release: dict[str, Any]) -> dict[str, Any]:
    """A live release whose processes crash-loop shows as ``crashed`` (the runtime knows)."""
    if release["status"] == SUCCEEDED and platform.runtime.crashed_release(name) == release["version"]:
        release["status"] = CRASHED
    return release


def list_releases(platform: Platform, who: Principal, name: str) -> list[dict[str, Any]]:
    with platform.db.sessions() as s:
        app = find(s, who, name)
        rows = s.scalars(select(Release).where(Release.app_id == app.id).order_by(Release.version.desc()))
        return [_mark_crashed(platform, name, describe(platform, s, r)) for r in rows]


def parse_version(raw: Any) -> int:
    text = str(raw)
    text = text[1:] if text[:1] in ("v", "V") else text
    if not re.fullmatch(r"[0-9]{1,9}", text) or int(text) < 1:
        raise InvalidParametersError(f"invalid release version {raw!r}: use a number like v3 or 3")
    return int(text)


def get_release(platform: Platform, who: Principal, name: str, version: Any) -> dict[str, Any]:
    number = parse_version(version)
    with platform.db.sessions() as s:
        app = find(s, who, name)
        rel = s.scalar(select(Release).where(Release.app_id == app.id, Release.version == number))
        if rel is None:
            raise NotFoundError(f"{name} has no release v{number}; see `moorage releases`")
        return _mark_crashed(platform, name, describe(platform, s, rel, with_config=True))


def rollback(
    platform: Platform, who: Principal, name: str, version: Any, progress: Progress
) -> dict[str, Any]:
    """A new release with the build and config of ``version`` (default: the one before the current)."""
    with platform.app_lock(name, who, "rollback"):
        with platform.db.unit_of_work() as s:
            app = find(s, who, name)
            live = current(s, app)
            if version is None:
                target = s.scalar(
                    select(Release)
                    .where(Release.app_id == app.id, Release.status != FAILED, Release.version < live.version)
                    .order_by(Release.version.desc())
                    .limit(1)
                )
                if target is None or target.version == 1:
                    raise UnprocessableError(f"{name} has no earlier release to roll back to")
            else:
                number = parse_version(version)
                target = s.scalar(select(Release).where(Release.app_id == app.id, Release.version == number))
                if target is None:
                    raise NotFoundError(f"{name} has no release v{number}; see `moorage releases`")
                if target.version == 1:
                    raise UnprocessableError("v1 is the empty initial release; roll back to a later one")
                if target.status == FAILED:
                    raise UnprocessableError(
                        f"v{number} failed to deploy; roll back to a release that worked"
                    )
            build_id, number = target.build_id, target.version
            values = _with_live_service_vars(platform, s, app, target, live)
        summary = f"{who.username} rolled back to v{number}"
        return record(
            platform, who, name, summary, build_id=build_id, config_values=values, progress=progress
        )


def _with_live_service_vars(
    platform: Platform, session: Session, app: App, target: Release, live: Release
) -> dict[str, str]:
    """``target``'s config, but service vars come from the services bound now.

    Rolling back code or config must not bring back credentials a rotation or an unbind
    revoked, nor drop the vars of a binding that still stands: the vars of services
    bound now keep their current values, and those a service provided in ``target``
    whose binding is gone since are left out.
    """
    owned = owned_vars(session, app.id)
    provided_then = set(target.service_vars or ())
    current_values = config_of(platform, session, live)
    values = {
        k: v
        for k, v in config_of(platform, session, target).items()
        if k not in owned and k not in provided_then
    }
    values.update({k: current_values[k] for k in owned if k in current_values})
    return values
