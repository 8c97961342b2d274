"""The platform's tool cache: build tools installed once for all apps, read-only to builds.

Why: some apps need a tool the machine does not have (yarn 1 or pnpm for a Node.js app
with ``yarn.lock`` or ``pnpm-lock.yaml``). Installing it in every build is slow and needs
the registry each time; installing it into one app's cache would repeat per app. So a
built-in buildpack may have ``bin/tools``:

* ``bin/tools BUILD_DIR`` (as the build's user) prints the tools the app needs, one name
  a line (``yarn-1.22.22``);
* ``bin/tools --install NAME DEST`` installs one of them into ``DEST``.

A tool missing from ``<tool cache>/NAME`` (``MOORAGE_PLATFORM_TOOL_CACHE_DIR``) is installed there once, as the platform's
unprivileged user (``run_as_user``, never an app's uid, whose processes could change the
files while they are installed), in a staging folder; then it is made root's and
read-only (``0755``/``0644``) and renamed into place, so a half-installed tool is never
seen. ``bin/compile`` gets the store as ``MOORAGE_TOOLS_DIR``. Only built-in buildpacks
may name tools: a ``BUILDPACK_URL`` of one app must not decide what another app's build runs.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from moorage.platform.builder.buildpacks import Buildpack
from moorage.platform.builder.failures import OutputTail
from moorage.platform.builder.processes import BuildFailed, BuildUser, run_step
from moorage.platform.builder.runner import Step

TOOL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ToolStore:
    def __init__(self, root: Path, installer: BuildUser) -> None:
        self.root = root
        self.installer = installer

    def provide(self, bp: Buildpack, build_dir: Path, step: Step) -> dict[str, str]:
        """Install what ``bp`` says the app needs; the variables its ``bin/compile`` gets."""
        script = bp.path / "bin" / "tools"
        if bp.spec.kind != "builtin" or not script.is_file():
            return {}
        result = run_step(
            [str(script), str(build_dir)],
            user=step.user,
            env=step.env,
            cwd=build_dir,
            limits=step.limits,
            deadline=step.deadline,
            progress=step.progress,
            capture_stdout=True,
            what=f"tools step of {bp.name}",
        )
        if result.exit_code != 0:
            raise BuildFailed(f"bin/tools of the {bp.name} buildpack failed (exit code {result.exit_code})")
        names = [line.strip() for line in result.output.splitlines() if line.strip()]
        bad = [name for name in names if not TOOL_NAME.match(name)]
        if bad:
            raise BuildFailed(f"bin/tools of the {bp.name} buildpack named invalid tools: {', '.join(bad)}")
        if not names:
            return {}
        for folder in reversed([self.root, *self.root.parents]):
            if not folder.exists():
                folder.mkdir(mode=0o755)
        self.root.chmod(0o755)
        for name in names:
            if not (self.root / name).is_dir():
                self._install(script, name, step)
        return {"MOORAGE_TOOLS_DIR": str(self.root)}

    def _install(self, script: Path, name: str, step: Step) -> None:
        step.progress(f"-----> Installing {name} into the platform's tool cache (once, for every app)")
        staging = Path(tempfile.mkdtemp(prefix=f".install-{name}-", dir=self.root))
        try:
            for sub in ("home", "tmp"):
                (staging / sub).mkdir()
            self.installer.give_tree(staging)
            # The build's copy of the buildpack is in a folder only that app may enter.
            shutil.copytree(script.parents[1], staging / "buildpack", symlinks=True)
            script = staging / "buildpack" / "bin" / "tools"
            staging.chmod(0o755)
            env = {**step.env, "HOME": str(staging / "home"), "TMPDIR": str(staging / "tmp")}
            tail = OutputTail(step.progress)
            result = run_step(
                [str(script), "--install", name, str(staging / "tool")],
                user=self.installer,
                env=env,
                cwd=staging,
                limits=step.limits,
                deadline=step.deadline,
                progress=tail,
                what=f"install of {name}",
            )
            if result.exit_code != 0 or not (staging / "tool").is_dir():
                last = " | ".join(list(tail.lines)[-3:])
                raise BuildFailed(
                    f"could not install {name} into the platform's tool cache (exit code "
                    f"{result.exit_code}): {last or 'no output'}; check that the registry is reachable"
                )
            _seal(staging / "tool")
            try:
                os.rename(staging / "tool", self.root / name)
            except OSError:
                if not (self.root / name).is_dir():  # not a concurrent build that got there first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _seal(tree: Path) -> None:
    """Root's and read-only for everyone else; executables stay executable. Links are kept."""
    as_root = os.geteuid() == 0
    for folder, dirs, files in os.walk(tree):
        for name in [*dirs, *files, ""]:
            path = os.path.join(folder, name) if name else folder
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                if as_root:
                    os.lchown(path, 0, 0)
                continue
            if as_root:
                os.chown(path, 0, 0)
            executable = stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111
            os.chmod(path, 0o755 if executable else 0o644)
