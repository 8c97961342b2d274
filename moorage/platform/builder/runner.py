"""The Heroku buildpack API: ``bin/detect``, ``bin/compile``, ``bin/release``, and the Procfile.

Why here and nowhere else: these are the only calls into buildpacks, and the contract
(see paas-anchors §3.6) is small and exact:

* ``bin/detect BUILD_DIR``: exit 0 and a name on stdout means "I build this";
* ``bin/compile BUILD_DIR CACHE_DIR ENV_DIR``: its output is streamed to the user as it
  comes; non-zero fails the build;
* ``bin/release BUILD_DIR``: YAML with ``default_process_types`` and ``config_vars``;
* an ``export`` file in a buildpack passes variables to the buildpacks after it.

Process types: the app's Procfile wins as a whole; without one, the buildpacks'
``default_process_types`` (a later buildpack's type replaces an earlier one's); with
neither the build fails, naming both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from moorage.platform import procfile
from moorage.platform.builder import failures, safefiles
from moorage.platform.builder.buildpacks import Buildpack
from moorage.platform.builder.processes import BuildFailed, BuildUser, Limits, Progress, StepResult, run_step


@dataclass
class Step:
    """What every buildpack call needs: who runs it, its environment, the deadline."""

    user: BuildUser
    env: dict[str, str]
    limits: Limits
    deadline: float
    progress: Progress

    def run(
        self,
        argv: Sequence[str],
        cwd: Path,
        what: str,
        *,
        progress: Progress | None,
        capture_stdout: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> StepResult:
        """``argv`` as this build's user, with its environment, limits and deadline."""
        return run_step(
            argv,
            user=self.user,
            env={**self.env, **(extra_env or {})},
            cwd=cwd,
            limits=self.limits,
            deadline=self.deadline,
            progress=progress,
            capture_stdout=capture_stdout,
            what=what,
        )


@dataclass
class Release:
    default_process_types: dict[str, str] = field(default_factory=dict)
    config_vars: dict[str, str] = field(default_factory=dict)


def detect(bp: Buildpack, build_dir: Path, step: Step) -> str | None:
    """The framework name when ``bp`` detects the app, else None."""
    result = step.run(
        [str(bp.path / "bin" / "detect"), str(build_dir)],
        build_dir,
        f"detect step of {bp.name}",
        progress=None,
        capture_stdout=True,
    )
    if result.exit_code != 0:
        return None
    return result.output.strip().splitlines()[0].strip() if result.output.strip() else bp.name


def compile_app(
    bp: Buildpack, build_dir: Path, cache_dir: Path, env_dir: Path, step: Step, extra_env: Mapping[str, str]
) -> None:
    argv = [str(bp.path / "bin" / "compile"), str(build_dir), str(cache_dir), str(env_dir)]
    tail = failures.OutputTail(step.progress)
    result = step.run(argv, build_dir, f"compile step of {bp.name}", progress=tail, extra_env=extra_env)
    if result.exit_code != 0:
        raise BuildFailed(failures.compile_failed(bp.name, result.exit_code, tail))


def exported_env(bp: Buildpack, step: Step) -> dict[str, str]:
    """Variables a buildpack's ``export`` file sets for the buildpacks after it."""
    export = bp.path / "export"
    if not export.is_file():
        return {}
    result = step.run(
        ["/bin/bash", "-c", 'set -a; . "$1" >/dev/null; env -0', "export", str(export)],
        bp.path,
        f"export file of {bp.name}",
        progress=None,
        capture_stdout=True,
    )
    if result.exit_code != 0:
        raise BuildFailed(f"the export file of the {bp.name} buildpack failed (exit code {result.exit_code})")
    pairs = (item.partition("=") for item in result.output.split("\0") if "=" in item)
    return {k: v for k, _, v in pairs if step.env.get(k) != v}


def release(bp: Buildpack, build_dir: Path, step: Step) -> Release:
    script = bp.path / "bin" / "release"
    if not script.is_file():
        return Release()
    result = step.run(
        [str(script), str(build_dir)],
        build_dir,
        f"release step of {bp.name}",
        progress=step.progress,
        capture_stdout=True,
    )
    if result.exit_code != 0:
        raise BuildFailed(f"bin/release of the {bp.name} buildpack failed (exit code {result.exit_code})")
    try:
        data = yaml.safe_load(result.output) or {}
    except yaml.YAMLError as e:
        raise BuildFailed(f"bin/release of the {bp.name} buildpack printed invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise BuildFailed(f"bin/release of the {bp.name} buildpack must print a YAML mapping")
    return Release(
        _str_map(data.get("default_process_types"), f"{bp.name} default_process_types"),
        _str_map(data.get("config_vars"), f"{bp.name} config_vars"),
    )


def _str_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BuildFailed(f"{what} must be a mapping of names to strings")
    return {str(k): str(v) for k, v in value.items() if v is not None}


def parse_procfile(text: str) -> dict[str, str]:
    """``type: command`` lines (see ``moorage.platform.procfile``); a bad one fails the build."""
    try:
        return procfile.parse(text)
    except procfile.ProcfileError as exc:
        raise BuildFailed(str(exc)) from None


def process_types(build_dir: Path, releases: list[tuple[Buildpack, Release]]) -> tuple[dict[str, str], str]:
    """The app's process types and where they came from."""
    text = safefiles.read_text(build_dir, "Procfile")
    if text is not None:
        types = parse_procfile(text)
        if types:
            return types, "Procfile"
    defaults: dict[str, str] = {}
    for _, rel in releases:
        defaults.update(rel.default_process_types)
    bad = [name for name in defaults if not procfile.is_process_type(name)]
    if bad:
        raise BuildFailed(
            f"the buildpack declared invalid process type names: {', '.join(bad)} ({procfile.RULE})"
        )
    multiline = [name for name, command in defaults.items() if "\n" in command or "\r" in command]
    if multiline:
        raise BuildFailed(f"the buildpack declared multi-line commands for: {', '.join(multiline)}")
    if not defaults:
        names = ", ".join(bp.name for bp, _ in releases)
        raise BuildFailed(
            "no process types: the app has no Procfile (or an empty one), and its buildpack "
            f"({names}) declared no default_process_types. Add a Procfile, for example `web: gunicorn app:app`"
        )
    return defaults, "default_process_types"
