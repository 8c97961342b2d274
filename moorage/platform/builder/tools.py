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
files while they are installed), in a staging folder; then we copy it into a folder of
our own, read-only to everyone else (``0755``/``0644``), and rename that into place, so a
half-installed tool is never seen and the installer's user keeps no handle on it. ``bin/compile`` gets the store as ``MOORAGE_TOOLS_DIR``. Only built-in buildpacks
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
        result = step.run(
            [str(script), str(build_dir)],
            build_dir,
            f"tools step of {bp.name}",
            progress=step.progress,
            capture_stdout=True,
        )
        if result.exit_code != 0:
            said = " | ".join(line.strip() for line in result.output.splitlines()[-3:] if line.strip())
            raise BuildFailed(
                f"bin/tools of the {bp.name} buildpack failed (exit code {result.exit_code})"
                + (f": {said}" if said else "")
            )
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
            if (script.parents[2] / "lib").is_dir():  # the shared helpers, at <buildpack>/../lib
                shutil.copytree(script.parents[2] / "lib", staging / "lib", symlinks=True)
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
            sealed = Path(tempfile.mkdtemp(prefix=f".sealed-{name}-", dir=self.root))
            try:
                _copy_as_root(staging / "tool", sealed / "tool")
                os.rename(sealed / "tool", self.root / name)
            except OSError:
                if not (self.root / name).is_dir():  # not a concurrent build that got there first
                    raise
            finally:
                shutil.rmtree(sealed, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _copy_as_root(source: Path, dest: Path) -> None:
    """A fresh copy made by us, read-only to others; executables stay executable.

    Why a copy and not a chown: the installer's user may still hold files of ``source``
    open or swap entries for links while we look; each entry is opened without following
    links, relative to its already-opened folder, and only regular files, folders and
    symbolic links (copied as links) are taken. Nobody else has a handle on the copy.
    """
    top = os.open(source, _NOFOLLOW | os.O_DIRECTORY)
    try:
        _copy_dir(top, dest)
    finally:
        os.close(top)


def _copy_dir(dir_fd: int, dest: Path) -> None:
    dest.mkdir(mode=0o755)
    dest.chmod(0o755)
    for name in os.listdir(dir_fd):
        st = os.lstat(name, dir_fd=dir_fd)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=dir_fd), dest / name)
        elif stat.S_ISDIR(st.st_mode):
            fd = os.open(name, _NOFOLLOW | os.O_DIRECTORY, dir_fd=dir_fd)
            try:
                _copy_dir(fd, dest / name)
            finally:
                os.close(fd)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, _NOFOLLOW, dir_fd=dir_fd)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                mode = 0o755 if os.fstat(fd).st_mode & 0o111 else 0o644
                with os.fdopen(os.dup(fd), "rb") as src, open(dest / name, "xb") as out:
                    os.set_blocking(src.fileno(), True)
                    shutil.copyfileobj(src, out)
                os.chmod(dest / name, mode)
            finally:
                os.close(fd)
