"""Which buildpacks build an app, and getting them into the build's work folder.

Why: the choice follows Heroku/herokuish, in this order:

1. the config var ``BUILDPACK_URL`` (one buildpack);
2. a ``.buildpacks`` file in the app (one per line, run in order: multi-buildpack);
3. otherwise the built-ins, in :data:`BUILTIN_ORDER`; the first whose ``bin/detect``
   exits 0 wins.

A buildpack is named by a git URL (``https://…``, ``file://…``, ``git@…``, optionally
``#ref`` for a branch, tag or commit), a local path (absolute, or relative to the app),
or a built-in's name (``python``, ``nodejs``, ``go``, ``static``, ``procfile``). Custom ones are
fetched *as the build user* (git clone, or a copy), so a config var cannot make
Moorage read a folder the build user could not read itself.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from moorage.platform.builder.processes import BuildFailed, BuildUser, Limits, Progress, run_step

BUILTIN_ORDER = ("python", "nodejs", "go", "static", "procfile")


def default_builtin_dir() -> Path:
    """The top-level ``buildpacks/`` folder beside the package."""
    return Path(__file__).resolve().parents[3] / "buildpacks"


@dataclass(frozen=True)
class BuildpackSpec:
    #: As the user wrote it (for messages).
    text: str
    #: "builtin", "git" or "path".
    kind: str
    location: str
    ref: str = ""
    #: Where it was named: "BUILDPACK_URL", ".buildpacks" or "built-in".
    origin: str = "built-in"


@dataclass(frozen=True)
class Buildpack:
    spec: BuildpackSpec
    path: Path

    @property
    def name(self) -> str:
        return self.spec.location if self.spec.kind == "builtin" else self.spec.text


def parse_spec(text: str, origin: str) -> BuildpackSpec:
    text = text.strip()
    if not text:
        raise BuildFailed(
            f"{origin} is empty; name a git URL, a path or a built-in ({', '.join(BUILTIN_ORDER)})"
        )
    if text in BUILTIN_ORDER:
        return BuildpackSpec(text, "builtin", text, origin=origin)
    if re.match(r"^[a-z][a-z0-9+.-]*://", text) or re.match(r"^[\w.-]+@[\w.-]+:", text):
        url, _, ref = text.partition("#")
        if not re.match(r"^(https?|git|ssh|file)://|^[\w.-]+@", url):
            raise BuildFailed(f"{origin} {text!r}: only https, http, git, ssh and file URLs are supported")
        if ref and not re.fullmatch(r"[\w./-]+", ref):
            raise BuildFailed(f"{origin} {text!r}: the #ref {ref!r} is not a branch, tag or commit name")
        return BuildpackSpec(text, "git", url, ref, origin)
    return BuildpackSpec(text, "path", text, origin=origin)


def requested(env: dict[str, str], build_dir: Path) -> list[BuildpackSpec] | None:
    """The buildpacks the app asks for, or None to detect among the built-ins."""
    if env.get("BUILDPACK_URL", "").strip():
        return [parse_spec(env["BUILDPACK_URL"], "BUILDPACK_URL")]
    listing = build_dir / ".buildpacks"
    if listing.is_file():
        lines = [ln.strip() for ln in listing.read_text(errors="replace").splitlines()]
        specs = [parse_spec(ln, ".buildpacks") for ln in lines if ln and not ln.startswith("#")]
        if not specs:
            raise BuildFailed(".buildpacks lists no buildpack; add one per line or delete the file")
        return specs
    return None


class BuildpackFetcher:
    """Puts buildpacks into ``<work>/buildpacks/NN-name`` where the build user can run them."""

    def __init__(
        self, builtin_dir: Path, work: Path, user: BuildUser, limits: Limits, env: dict[str, str]
    ) -> None:
        self.builtin_dir = builtin_dir
        self.root = work / "buildpacks"
        self.user = user
        self.limits = limits
        self.env = env
        self.root.mkdir(mode=0o755)
        self._count = 0
        # The built-ins' shared shell helpers (lib/failures.sh), at <buildpack>/../lib as in the repo.
        if (builtin_dir / "lib").is_dir():
            shutil.copytree(builtin_dir / "lib", self.root / "lib", symlinks=True)

    def fetch(self, spec: BuildpackSpec, build_dir: Path, deadline: float, progress: Progress) -> Buildpack:
        self._count += 1
        slug = (
            re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.location.rstrip("/").rsplit("/", 1)[-1])[:40] or "buildpack"
        )
        dest = self.root / f"{self._count:02d}-{slug}"
        if spec.kind == "builtin":
            source = self.builtin_dir / spec.location
            if not (source / "bin" / "detect").is_file():
                raise BuildFailed(
                    f"the built-in buildpack {spec.location!r} is missing from {self.builtin_dir}"
                )
            shutil.copytree(source, dest, symlinks=True)
        elif spec.kind == "git":
            self._git(spec, dest, deadline, progress)
        else:
            source = Path(spec.location)
            if not source.is_absolute():
                source = build_dir / source
            self._as_user(
                ["cp", "-R", "--no-preserve=ownership", f"{source}/.", str(dest)],
                dest,
                deadline,
                progress,
                f"could not copy the buildpack {spec.text!r} named by {spec.origin}: it must be a folder "
                "the build user can read",
            )
        for script in ("detect", "compile"):
            if not (dest / "bin" / script).is_file():
                raise BuildFailed(
                    f"{spec.text!r} (from {spec.origin}) is not a buildpack: it has no bin/{script}. "
                    "A buildpack has bin/detect, bin/compile and bin/release"
                )
        return Buildpack(spec, dest)

    def _git(self, spec: BuildpackSpec, dest: Path, deadline: float, progress: Progress) -> None:
        progress(f"-----> Fetching buildpack {spec.text}")
        self._as_user(
            ["git", "clone", "--quiet", spec.location, str(dest)],
            dest,
            deadline,
            progress,
            f"could not clone the buildpack {spec.location} (from {spec.origin}); check the URL",
        )
        if spec.ref:
            self._run(
                ["git", "-C", str(dest), "checkout", "--quiet", spec.ref],
                deadline,
                progress,
                f"the buildpack {spec.location} has no branch, tag or commit {spec.ref!r}",
            )

    def _as_user(self, argv: list[str], dest: Path, deadline: float, progress: Progress, error: str) -> None:
        dest.mkdir()
        self.user.give(dest)
        self._run(argv, deadline, progress, error)

    def _run(self, argv: list[str], deadline: float, progress: Progress, error: str) -> None:
        lines: list[str] = []
        result = run_step(
            argv,
            user=self.user,
            env=self.env,
            cwd=self.root,
            limits=self.limits,
            deadline=deadline,
            progress=lines.append,
            what="buildpack fetch",
        )
        if result.exit_code != 0:
            detail = "; ".join(ln.strip() for ln in lines if ln.strip())[-500:]
            raise BuildFailed(f"{error}" + (f" ({detail})" if detail else ""))
