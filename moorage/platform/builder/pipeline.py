"""One build: source tree + config → slug in the store + process types.

Why one class: the controller's build step is a single swappable function
``build(app, source_dir, env, progress) -> (artifact, process_types)``;
:class:`Builder` is the real implementation behind it (``Builder.__call__``), and
:meth:`Builder.build` returns the fuller :class:`BuildResult` for callers that want the
slug reference, size and buildpacks.

The steps (deis slugbuilder and herokuish, §3.2/§3.7 of the PaaS anchors):

1. a private work folder ``/tmp/moorage-build-XXXX`` holding ``build/`` (a copy of the
   source without ``.git``), ``cache/`` (the app's cache, moved in), ``env/`` (one file
   per config var, ``0600``), ``home/`` and ``tmp/``; those five are the build user's
   (``0700``), everything else root's;
2. ``.slugignore`` applied; buildpacks chosen, fetched and run (detect, compile,
   release) as the build user with limits and a deadline for the whole build; before
   a built-in's compile, the tools it names come from the shared tool cache (``tools``);
3. ``.release`` and, without a Procfile, a Procfile from ``default_process_types``
   are written into the slug; legacy ``config_vars`` go to
   ``.profile.d/000-release-config.sh`` as defaults the app's config overrides;
4. the slug is packed, checked against the size limit and put in the store; the cache
   goes back; the work folder is removed.

Who the build user is: as root, the app's own uid, the one the controller allocated for
the app and the local runtime gives its processes (``uid``, see
``moorage.platform.controller.app_uids``), so builds of two
apps running at once cannot read each other's config (``env/``) or change each other's
build or cache. The work folder stays root's (a folder the build user owns could hold a
symlink planted for the root controller to follow) with the app's group and mode
``0710``: only that build may even enter it. Not as root, builds run as ourselves.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from moorage.errors import InvalidParametersError
from moorage.platform import slug_store
from moorage.platform.builder import python_versions, runner, safefiles, slugs
from moorage.platform.builder.buildpacks import (
    BUILTIN_ORDER,
    Buildpack,
    BuildpackFetcher,
    BuildpackSpec,
    default_builtin_dir,
    requested,
)
from moorage.platform.builder.cache import BuildCaches
from moorage.platform.builder.processes import BuildFailed, BuildUser, Limits, Progress
from moorage.platform.builder.tools import ToolStore
from moorage.settings import Settings, default_tool_cache_dir

log = logging.getLogger(__name__)

CONFIG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Variables of Moorage's own environment that builds inherit (proxies, CA bundles, locale).
INHERITED = re.compile(
    r"^(https?_proxy|no_proxy|HTTPS?_PROXY|NO_PROXY|ALL_PROXY|all_proxy|SSL_CERT_FILE|SSL_CERT_DIR|"
    r"REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|NODE_EXTRA_CA_CERTS|GIT_SSL_CAINFO|PIP_CERT|PIP_INDEX_URL|"
    r"PIP_EXTRA_INDEX_URL|PIP_FIND_LINKS|PIP_DEFAULT_TIMEOUT|npm_config_registry|NPM_CONFIG_REGISTRY|LANG|LC_ALL|TZ)$"
)


def inherited_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of an entry point's ``os.environ`` that builds need to reach registries."""
    return {k: v for k, v in environ.items() if INHERITED.match(k)}


@dataclass(frozen=True)
class BuildResult:
    slug: str
    slug_size: int
    process_types: dict[str, str]
    #: "Procfile" or "default_process_types".
    process_types_from: str
    buildpacks: list[str]
    config_vars: dict[str, str]
    seconds: float


class Builder:
    def __init__(
        self,
        settings: Settings,
        *,
        environ: Mapping[str, str] | None = None,
        builtin_dir: Path | None = None,
        limits: Limits | None = None,
        work_root: Path | None = None,
        store: slug_store.SlugStore | None = None,
    ) -> None:
        self.settings = settings
        self.base_env = inherited_environment(environ or {})
        self._pip_env = python_versions.pip_index_env(environ or {})
        self.builtin_dir = builtin_dir or default_builtin_dir()
        self.limits = limits or Limits()
        self.work_root = work_root or Path(tempfile.gettempdir())
        self.store = store or slug_store.store_from_settings(settings)
        self.caches = BuildCaches(settings.data_dir / "build-cache")
        #: Ourselves when not root; as root only the fallback, each build runs as its app's uid.
        self.user = BuildUser.resolve(settings.platform.run_as_user)
        tool_dir = settings.platform.tool_cache_dir
        self.tools = ToolStore(Path(tool_dir) if tool_dir else default_tool_cache_dir(), self.user)
        self._pythons: str | None = None

    # The controller's build step.
    def __call__(
        self, app: str, source_dir: Path, env: Mapping[str, str], progress: Progress, uid: int | None = None
    ) -> tuple[str, dict[str, str]]:
        result = self.build(app, Path(source_dir), env, progress, uid=uid)
        return result.slug, result.process_types

    def build(
        self, app: str, source_dir: Path, env: Mapping[str, str], progress: Progress, uid: int | None = None
    ) -> BuildResult:
        """Build ``source_dir``; as root the steps run as ``uid``, the app's (see ``user_for``).

        The steps: check the input, lay out a private work folder, run the buildpacks,
        pack the slug; the cache is kept (or its loss logged) whatever happens.
        """
        started = time.monotonic()
        deadline = started + self.settings.platform.build_timeout_seconds
        config = self._checked_config(app, source_dir, env)
        user = self.user_for(app, uid)
        work = Path(tempfile.mkdtemp(prefix="moorage-build-", dir=self.work_root))
        cache_dir = work / "cache"
        checked_out = False
        try:
            build_dir, env_dir = self._lay_out(work, source_dir, config, user, progress)
            checked_out = self.caches.check_out(app, cache_dir)
            for path in (build_dir, env_dir, cache_dir, work / "home", work / "tmp"):
                user.give_tree(path)
                path.chmod(0o700)  # root-made or moved in: never a symlink
            step = runner.Step(user, self._step_env(work), self.limits, deadline, progress)
            packs = self._choose(config, build_dir, work, step)
            releases = self._compile(packs, build_dir, cache_dir, env_dir, step, progress)
            types, origin = runner.process_types(build_dir, releases)
            progress("-----> Discovering process types")
            progress(f"       {origin} declares types -> {', '.join(types)}")
            config_vars = self._write_release(build_dir, releases, types, origin)
            ref, size = self._pack(app, work, build_dir, progress)
            seconds = time.monotonic() - started
            log.info("built %s in %.1fs: slug %s (%d bytes)", app, seconds, ref, size, extra={"app": app})
            return BuildResult(ref, size, types, origin, [bp.name for bp, _ in packs], config_vars, seconds)
        finally:
            self._keep_cache(app, cache_dir, checked_out)
            shutil.rmtree(work, ignore_errors=True)

    def _checked_config(self, app: str, source_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
        """The config vars as strings; bad names or a missing source refuse the build before
        anything is written."""
        config = {str(k): str(v) for k, v in env.items()}
        bad = [k for k in config if not CONFIG_NAME.match(k)]
        if bad:
            raise InvalidParametersError(f"config var names must be letters, digits and _: {', '.join(bad)}")
        if not source_dir.is_dir():
            raise InvalidParametersError(f"the source {source_dir} is not a folder")
        self.caches.check_name(app)
        return config

    def _lay_out(
        self, work: Path, source_dir: Path, config: Mapping[str, str], user: BuildUser, progress: Progress
    ) -> tuple[Path, Path]:
        """The build and env folders (buildpack API: one file per config var), home and tmp.

        The work folder is group-readable by the build user only, so other apps' builds
        cannot look in.
        """
        if user.gid is not None:
            os.chown(work, -1, user.gid)
            work.chmod(0o710)
        build_dir, env_dir = work / "build", work / "env"
        shutil.copytree(source_dir, build_dir, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        removed = slugs.apply_slugignore(build_dir)
        if removed:
            progress(f"-----> .slugignore removed {len(removed)} path(s): {', '.join(removed[:10])}")
        env_dir.mkdir()
        for name, value in config.items():
            (env_dir / name).write_text(value)
            (env_dir / name).chmod(0o600)
        for sub in ("home", "tmp"):
            (work / sub).mkdir()
        # Buildpacks may live in git repositories owned by someone else (file:// URLs).
        (work / "home" / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
        return build_dir, env_dir

    def _compile(
        self,
        packs: list[tuple[Buildpack, str]],
        build_dir: Path,
        cache_dir: Path,
        env_dir: Path,
        step: runner.Step,
        progress: Progress,
    ) -> list[tuple[Buildpack, runner.Release]]:
        """Compile with each buildpack in turn (each sees what the previous exported), then
        ask each for its release description."""
        for bp, name in packs:
            progress(f"-----> {name} app detected")
            tools_env = self.tools.provide(bp, build_dir, step)
            runner.compile_app(bp, build_dir, cache_dir, env_dir, step, tools_env)
            step.env.update(runner.exported_env(bp, step))
        return [(bp, runner.release(bp, build_dir, step)) for bp, _ in packs]

    def _pack(self, app: str, work: Path, build_dir: Path, progress: Progress) -> tuple[str, int]:
        """The slug, compressed and put in the store: its reference and size in bytes."""
        progress("-----> Compressing...")
        slug_file = work / "slug.tgz"
        size = slugs.make_slug(build_dir, slug_file, self.settings.platform.slug_max_mb)
        progress(f"       Done: {size / 1024 / 1024:.1f}M")
        return self.store.put(app, uuid.uuid4().hex, slug_file), size

    def _keep_cache(self, app: str, cache_dir: Path, checked_out: bool) -> None:
        """Check the cache back in; a failure to do so must not hide the build's own outcome."""
        if cache_dir.is_dir():
            try:
                self.caches.check_in(app, cache_dir)
            except OSError:
                log.exception("could not keep the build cache of %s", app, extra={"app": app})
        elif checked_out:
            log.warning("the build cache of %s was lost", app, extra={"app": app})

    def user_for(self, app: str, uid: int | None) -> BuildUser:
        """Who the build steps of ``app`` run as: its own ``uid`` as root, else ourselves.

        As root without a uid (a build started by hand, not by the controller) the steps
        run as ``run_as_user``.
        """
        if self.user.uid is None or uid is None:
            return self.user
        return BuildUser.for_app(app, uid)

    def _step_env(self, work: Path) -> dict[str, str]:
        if self._pythons is None:
            self._pythons = python_versions.stack_pythons(Path(self.settings.platform.stack_dir))
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(work / "home"),
            "TMPDIR": str(work / "tmp"),
            "LANG": "C.UTF-8",
            "STACK": "moorage-1",
            "STACK_PYTHONS": self._pythons,
        }
        env.update(self._pip_env)
        env.update(self.base_env)
        return env

    def _choose(
        self, config: dict[str, str], build_dir: Path, work: Path, step: runner.Step
    ) -> list[tuple[Buildpack, str]]:
        fetcher = BuildpackFetcher(self.builtin_dir, work, step.user, self.limits, step.env)
        specs = requested(config, build_dir)
        if specs is not None:
            chosen = []
            for spec in specs:
                bp = fetcher.fetch(spec, build_dir, step.deadline, step.progress)
                name = runner.detect(bp, build_dir, step)
                if name is None:
                    raise BuildFailed(
                        f"the buildpack {spec.text} (from {spec.origin}) does not detect this app "
                        "(its bin/detect exited non-zero); check that it fits the app"
                    )
                chosen.append((bp, name))
            return chosen
        for builtin in BUILTIN_ORDER:
            bp = fetcher.fetch(
                BuildpackSpec(builtin, "builtin", builtin), build_dir, step.deadline, step.progress
            )
            name = runner.detect(bp, build_dir, step)
            if name is not None:
                return [(bp, name)]
        raise BuildFailed(
            "no buildpack detected this app: it needs requirements.txt or pyproject.toml (Python), "
            "package.json (Node.js), go.mod or *.go (Go), index.html (static site) or a Procfile; "
            "or set BUILDPACK_URL "
            f"(built-ins tried: {', '.join(BUILTIN_ORDER)})"
        )

    def _write_release(
        self,
        build_dir: Path,
        releases: list[tuple[Buildpack, runner.Release]],
        types: dict[str, str],
        origin: str,
    ) -> dict[str, str]:
        defaults: dict[str, str] = {}
        config_vars: dict[str, str] = {}
        for _, rel in releases:
            defaults.update(rel.default_process_types)
            config_vars.update(rel.config_vars)
        # The build folder is the build user's: never follow a link they may have left.
        safefiles.write_text(
            build_dir,
            ".release",
            yaml.safe_dump({"default_process_types": defaults, "config_vars": config_vars}, sort_keys=True),
        )
        if origin != "Procfile":
            safefiles.write_text(build_dir, "Procfile", "".join(f"{k}: {v}\n" for k, v in types.items()))
        if config_vars:
            profile_d = safefiles.make_dir(build_dir, ".profile.d")
            lines = [
                f'if [ -z "${{{k}+set}}" ]; then export {k}={shlex.quote(v)}; fi\n'
                for k, v in config_vars.items()
                if CONFIG_NAME.match(k)
            ]
            safefiles.write_text(
                profile_d,
                "000-release-config.sh",
                "# config_vars from bin/release; app config wins\n" + "".join(lines),
            )
        return config_vars
