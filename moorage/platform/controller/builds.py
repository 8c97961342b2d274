"""Builds: from an uploaded source tree to a release that runs.

Why one swappable step: :func:`procfile_build` (this issue: the source tree itself plus
its Procfile is the artifact) has the signature every builder keeps,
``build(app, source_dir, env, progress, uid=…) -> (artifact, process_types)``, so the
buildpack builder replaces it without the controller changing. When the artifact is the
source tree itself it is moved under ``<data_dir>/slugs/<app>/<build id>/``; any other
artifact (a slug path or URL from the builder's store) is kept as given. Then the Build
and a release ("alice deployed 3f2a9c1") are recorded and deployed.

:func:`build_step` picks the step a controller uses: the buildpack
:class:`~moorage.platform.builder.Builder` by default, ``"procfile"`` for the
Procfile-only step (fast tests), or any function with that signature.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import select

from moorage.errors import InvalidParametersError
from moorage.platform import procfile
from moorage.platform.controller import releases
from moorage.platform.controller.apps import find
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.runtime.base import Progress
from moorage.platform.sources import extract_tarball
from moorage.settings import Settings
from moorage.store.apps import Build

log = logging.getLogger(__name__)

SOURCE_VERSION_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def parse_procfile(text: str) -> dict[str, str]:
    """``type: command`` lines (see ``moorage.platform.procfile``)."""
    return procfile.parse(text)


def procfile_build(
    app: str, source_dir: Path, env: Mapping[str, str], progress: Progress, uid: int | None = None
) -> tuple[Path, dict[str, str]]:
    """The artifact is the source tree itself; its Procfile lists the process types (runs nothing)."""
    path = source_dir / "Procfile"
    if path.is_symlink() or not path.is_file():
        raise InvalidParametersError(
            "no Procfile at the top of the source; add one with a line like `web: python app.py`"
        )
    processes = parse_procfile(path.read_text(errors="replace"))
    if not processes:
        raise InvalidParametersError(
            "the Procfile declares no process types; add a line like `web: python app.py`"
        )
    progress(f"-----> Procfile declares types -> {', '.join(processes)}")
    return source_dir, processes


class BuildStep(Protocol):
    """``build(app, source_dir, env, progress, uid=…)``: ``uid`` is the app's (see app_uids)."""

    def __call__(
        self, app: str, source_dir: Path, env: Mapping[str, str], progress: Progress, uid: int | None = None
    ) -> tuple[Any, dict[str, str]]: ...


def build_step(settings: Settings, choice: Any = None, environ: Mapping[str, str] | None = None) -> BuildStep:
    """The build step of a controller: ``None`` → buildpacks, ``"procfile"`` → Procfile only.

    ``environ`` is the entry point's environment; builds inherit only its proxy,
    CA-bundle and registry variables (see ``builder.inherited_environment``).
    """
    if choice is None or choice == "buildpacks":
        from moorage.platform.builder import Builder

        return Builder(settings, environ=environ)
    if choice == "procfile":
        return procfile_build
    if callable(choice):
        return choice
    raise ValueError(f"unknown build step {choice!r}: use None, 'buildpacks', 'procfile' or a function")


def receive(platform: Platform, who: Principal, name: str, fileobj: IO[bytes]) -> Path:
    """Check access, then unpack an upload safely into a fresh directory (see sources)."""
    with platform.db.unit_of_work() as s:
        find(s, who, name)
    limit = platform.settings.platform.slug_max_mb * 1024 * 1024
    return extract_tarball(fileobj, platform.slugs_dir / name, limit)


def source_version_of(requested: str | None, digest: str) -> str:
    if requested:
        if not SOURCE_VERSION_RE.match(requested):
            raise InvalidParametersError(
                f"invalid source version {requested!r}: up to 64 letters, digits, dots, dashes and underscores"
            )
        return requested
    return digest


def file_digest(fileobj: IO[bytes]) -> str:
    fileobj.seek(0)
    digest = hashlib.sha1()  # the same length as a git sha, for display only
    while chunk := fileobj.read(64 * 1024):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest()


def deploy_source(
    platform: Platform, who: Principal, name: str, source_dir: Path, source_version: str, progress: Progress
) -> dict[str, Any]:
    """Build ``source_dir``, record the build and a release, and deploy it."""
    builder = platform.builder or procfile_build
    try:
        with platform.app_lock(name, who, f"a build of {source_version[:7]}", long=True):
            with platform.db.unit_of_work() as s:
                app = find(s, who, name)
                live = releases.current(s, app)
                env = releases.config_of(platform, s, live)
                config_id, uid = live.config_id, app.uid
            progress(f"-----> Building {name} ({source_version[:7]})")
            artifact, processes = builder(name, source_dir, env, progress, uid=uid)
            for ptype in processes:
                if not procfile.is_process_type(ptype):
                    raise InvalidParametersError(
                        f"invalid process type {ptype!r} from the build ({procfile.RULE})"
                    )
            build_id = str(uuid.uuid4())
            if Path(artifact).resolve() == source_dir.resolve():  # the source tree is the artifact
                final = platform.slugs_dir / name / build_id
                shutil.move(str(source_dir), final)
                artifact = str(final)
            with platform.db.unit_of_work() as s:
                app = find(s, who, name)
                s.add(
                    Build(
                        id=build_id,
                        app_id=app.id,
                        source_version=source_version,
                        artifact=str(artifact),
                        procfile=dict(processes),
                        created_by=who.username,
                    )
                )
            progress(f"-----> Build {build_id[:8]} stored")
            summary = f"{who.username} deployed {source_version[:7]}"
            return releases.record(
                platform, who, name, summary, build_id=build_id, config_id=config_id, progress=progress
            )
    finally:
        if source_dir.exists():
            shutil.rmtree(source_dir, ignore_errors=True)


def list_builds(platform: Platform, who: Principal, name: str) -> list[dict[str, Any]]:
    with platform.db.unit_of_work() as s:
        app = find(s, who, name)
        rows = s.scalars(select(Build).where(Build.app_id == app.id).order_by(Build.created_at.desc()))
        return [
            {
                "id": b.id,
                "source_version": b.source_version,
                "procfile": b.procfile,
                "created_by": b.created_by,
                "created": b.created_at.isoformat(),
            }
            for b in rows
        ]
