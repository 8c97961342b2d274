"""The Python interpreters of this machine that the build and app user can run.

Why this lives on Moorage's side: the Python buildpack picks an interpreter itself, but
it runs as an unprivileged user, and pyenv's interpreters are under ``/root/.pyenv``,
behind ``/root``'s ``0700``. The decision (documented in docs/architecture.md):

* we do **not** copy interpreters (300 MB each) into every slug or a stack folder;
* by default we offer only interpreters the unprivileged user can already reach: the
  system's ``/usr/bin/python3.X`` and ``/usr/local/bin``, and pyenv's when its folders
  are already searchable. We never change ``/root``'s mode on our own: search permission
  there would let every app open world-readable files under ``/root`` by name;
* an operator who wants pyenv's versions for their apps opts in with
  ``MOORAGE_PLATFORM_SHARE_ROOT_PYENV=true``; then we grant *search* permission only
  (``o+x``, never ``o+r``) on the folders leading to each pyenv version and log it.

The list is handed to the buildpack as ``STACK_PYTHONS`` (colon-separated
``version=path`` entries, worked out once per builder so builds need not ask). Apps
run the same interpreters (the slug's venv names it in ``pyvenv.cfg``).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

SYSTEM_DIRS = (Path("/usr/bin"), Path("/usr/local/bin"))


def discover(pyenv_root: Path | None = Path("/root/.pyenv")) -> list[Path]:
    """Paths of Python 3 interpreters: ``/usr/bin/python3.X``, ``/usr/local/bin`` and pyenv's."""
    found: list[Path] = []
    for folder in SYSTEM_DIRS:
        if folder.is_dir():
            found += sorted(p for p in folder.glob("python3.*") if p.name[len("python3.") :].isdigit())
    if pyenv_root is not None and (pyenv_root / "versions").is_dir():
        for version in sorted((pyenv_root / "versions").iterdir()):
            exe = version / "bin" / "python3"
            if version.name.startswith("3.") and exe.exists():
                found.append(exe)
    return found


def make_reachable(interpreters: list[Path], uid: int | None, grant: bool = False) -> list[Path]:
    """The interpreters an unprivileged user can run; with ``grant``, make pyenv's runnable.

    With ``uid`` None (we are not root) nothing is changed and the list is returned as it is.
    """
    if uid is None:
        return interpreters
    usable = []
    for exe in interpreters:
        top = _pyenv_version_dir(exe)
        if top is not None and grant:
            for folder in [*reversed(top.parents), top]:
                mode = folder.stat().st_mode
                if not mode & stat.S_IXOTH:
                    log.warning("granting search permission (o+x) on %s so builds can use %s", folder, exe)
                    os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)
        if _world_executable(exe):
            usable.append(exe)
        else:
            log.info(
                "not offering %s to builds: the app user cannot reach it "
                "(MOORAGE_PLATFORM_SHARE_ROOT_PYENV=true grants search permission on /root)",
                exe,
            )
    return usable


def _pyenv_version_dir(exe: Path) -> Path | None:
    parts = exe.parts
    if "versions" in parts:
        return Path(*parts[: parts.index("versions") + 2])
    return None


def _world_executable(exe: Path) -> bool:
    try:
        real = exe.resolve(strict=True)
    except OSError:
        return False
    return bool(real.stat().st_mode & stat.S_IXOTH) and all(
        p.stat().st_mode & stat.S_IXOTH for p in real.parents
    )


def version_of(exe: Path) -> str:
    """``3.12.1`` (pyenv's folder name, or asked from the interpreter); "" when unknown."""
    top = _pyenv_version_dir(exe)
    if top is not None and re.fullmatch(r"3\.\d+\.\d+", top.name):
        return top.name
    try:
        out = subprocess.run(
            [str(exe), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out if re.fullmatch(r"3\.\d+\.\d+", out) else ""


def stack_pythons(
    uid: int | None, share_root_pyenv: bool = False, pyenv_root: Path | None = Path("/root/.pyenv")
) -> str:
    """The ``STACK_PYTHONS`` value for the buildpack: ``version=path`` entries."""
    entries = []
    for exe in make_reachable(discover(pyenv_root), uid, grant=share_root_pyenv):
        version = version_of(exe)
        entries.append(f"{version}={exe}" if version else str(exe))
    return ":".join(entries)
