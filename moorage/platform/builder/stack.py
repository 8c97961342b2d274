"""The platform's interpreter store: Python versions that every app uid can run.

Why a store: builds and apps run under unprivileged uids, but pyenv's interpreters live
under ``/root/.pyenv``, behind ``/root``'s ``0700`` (opening ``/root`` would let every app
open world-readable files there by name). So at install time (``moorage stack:install``,
run by ``scripts/bootstrap``) each interpreter is *copied* into
``<stack_dir>/python/<version>/``, root-owned and world-readable, never under ``/root``:

* only what running and making venvs needs: ``bin/python3.X``, ``lib/`` without the
  test suite and without the contents of ``site-packages`` (apps install into their own
  venvs; root's packages must not leak into them), ``include/`` for C extensions;
* pyenv links ``bin/python3.X`` with a RUNPATH naming its own ``lib/``; every ELF file's
  RUNPATH is repointed with ``patchelf`` to the copy's ``lib/``, and the build
  paths in ``_sysconfigdata`` are rewritten, so nothing refers to ``/root`` any more;
* each copy is then *run from its new place as the unprivileged user* (who cannot enter
  ``/root``): ``sys.prefix`` must be the new folder and ``ssl``, ``sqlite3``, ``venv`` and
  ``ensurepip`` must import, or the copy is discarded and the report says why.

The system's interpreters (``/usr/bin/python3.X``) are already root-owned and reachable:
they are recorded, not copied. Where the internet is reachable, ``uv python install``
adds versions nothing on the machine has (python-build-standalone builds, relocatable).

The list lives in ``<stack_dir>/python.json`` (written last, by rename), so a half-done
install is never offered; builds get it as ``STACK_PYTHONS`` (``python_versions.py``).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

Report = Callable[[str], None]

VERSION = re.compile(r"\d+\.\d+\.\d+")
SYSTEM_DIRS = (Path("/usr/bin"), Path("/usr/local/bin"))
CHECK = (
    "import sys, ssl, sqlite3, venv, ensurepip; print('%d.%d.%d' % sys.version_info[:3]); print(sys.prefix)"
)


class StackError(Exception):
    """An interpreter could not be put into the store; the message says which and why."""


@dataclass(frozen=True)
class StackPython:
    version: str
    #: The ``python3`` to run.
    path: str
    #: Where it came from: ``system``, ``pyenv /root/.pyenv/versions/3.6.15`` or ``uv``.
    source: str

    @property
    def key(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self.version.split("."))


class StackStore:
    """``<root>/python/<version>/`` copies and ``<root>/python.json``, the list builds see."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.manifest = self.root / "python.json"

    def pythons(self) -> list[StackPython]:
        """What is installed, newest first; entries whose interpreter went missing are left out."""
        try:
            entries = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return []
        found = [
            StackPython(**e) for e in entries if isinstance(e, dict) and os.access(e.get("path", ""), os.X_OK)
        ]
        return sorted(found, key=lambda p: p.key, reverse=True)

    def save(self, pythons: Iterable[StackPython]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        unique = {p.version: p for p in pythons}
        data = json.dumps(
            [asdict(p) for p in sorted(unique.values(), key=lambda p: p.key, reverse=True)], indent=1
        )
        tmp = self.manifest.with_name(".python.json.tmp")
        tmp.write_text(data + "\n")
        tmp.chmod(0o644)
        os.replace(tmp, self.manifest)


def pyenv_prefixes(roots: Iterable[Path]) -> list[Path]:
    """pyenv's ``versions/3.X.Y`` folders (Python 3 only: the buildpack makes venvs)."""
    found = []
    for root in roots:
        versions = Path(root) / "versions"
        if versions.is_dir():
            found += sorted(
                p for p in versions.iterdir() if VERSION.fullmatch(p.name) and p.name.startswith("3.")
            )
    return found


def system_interpreters() -> list[Path]:
    found: list[Path] = []
    for folder in SYSTEM_DIRS:
        if folder.is_dir():
            found += sorted(p for p in folder.glob("python3.*") if p.name[len("python3.") :].isdigit())
    return found


def run_checked(exe: Path, expect_prefix: Path | None, user: str) -> str:
    """Run ``exe`` as ``user`` (when we are root) from where it is; its version, or StackError."""
    ids: dict = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    try:
        proc = subprocess.run(
            [str(exe), "-c", CHECK],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            **ids,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StackError(f"{exe} does not run as {user}: {e}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise StackError(f"{exe} does not run as {user} (exit {proc.returncode}): {last}")
    version, _, prefix = proc.stdout.strip().partition("\n")
    if expect_prefix is not None and Path(prefix) != expect_prefix:
        raise StackError(f"{exe} runs but finds its library at {prefix}, not {expect_prefix}")
    return version


def copy_pyenv(prefix: Path, dest: Path) -> Path:
    """Copy one pyenv version to ``dest`` and make it run from there; its ``bin/python3``."""
    minor = ".".join(prefix.name.split(".")[:2])
    exe = prefix / "bin" / f"python{minor}"
    if not exe.is_file():
        raise StackError(f"{prefix} has no bin/python{minor}")
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "bin").mkdir(parents=True)
    shutil.copy2(exe, tmp / "bin" / exe.name)
    (tmp / "bin" / "python3").symlink_to(exe.name)
    skip = shutil.ignore_patterns("test", "idle_test", "site-packages", "*.a")
    for sub in ("lib", "include"):
        if (prefix / sub).is_dir():
            shutil.copytree(prefix / sub, tmp / sub, symlinks=True, ignore=skip)
    for site in tmp.glob("lib/python*"):
        (site / "site-packages").mkdir(exist_ok=True)
    repoint_elf(tmp, prefix.resolve(), dest)
    rewrite_build_paths(tmp, prefix.resolve(), dest)
    for folder, dirs, files in os.walk(tmp):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, (os.stat(path).st_mode & 0o755) | 0o444 | (0o111 if name in dirs else 0))
    tmp.chmod(0o755)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest / "bin" / "python3"


def repoint_elf(tree: Path, old_prefix: Path, new_prefix: Path) -> int:
    """Every ELF file in ``tree`` whose RUNPATH names ``old_prefix`` names ``new_prefix`` instead.

    Absolute, not ``$ORIGIN``-relative: the buildpack copies ``bin/python3.X`` into each
    app's venv, where ``$ORIGIN/../lib`` would find no libpython (or the system's, of
    another patch release).
    """
    patchelf = shutil.which("patchelf")
    changed = 0
    for folder, _dirs, files in os.walk(tree):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() or not _is_elf(path):
                continue
            if patchelf is None:
                raise StackError(
                    "patchelf is not installed (Debian package patchelf); scripts/bootstrap installs it"
                )
            rpath = subprocess.run(
                [patchelf, "--print-rpath", str(path)], capture_output=True, text=True
            ).stdout.strip()
            if str(old_prefix) not in rpath:
                continue
            entries = []
            for entry in filter(None, rpath.split(":")):
                if entry.startswith(str(old_prefix)):
                    entry = os.path.normpath(new_prefix / os.path.relpath(entry, old_prefix))
                entries.append(entry)
            done = subprocess.run(
                [patchelf, "--set-rpath", ":".join(entries), str(path)], capture_output=True, text=True
            )
            if done.returncode != 0:
                raise StackError(f"patchelf --set-rpath failed on {path}: {done.stderr.strip()}")
            changed += 1
    return changed


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def rewrite_build_paths(tree: Path, old_prefix: Path, new_prefix: Path) -> None:
    """``sysconfig``'s recorded paths (compiler flags for C extensions) name the new place."""
    old, new = str(old_prefix).encode(), str(new_prefix).encode()
    for data_file in [
        *tree.glob("lib/python*/_sysconfigdata*.py"),
        *tree.glob("lib/python*/config-*/Makefile"),
    ]:
        text = data_file.read_bytes()
        if old in text:
            data_file.write_bytes(text.replace(old, new))
            for cached in data_file.parent.glob(f"__pycache__/{data_file.stem}.*.pyc"):
                cached.unlink()


def install(
    store: StackStore,
    pyenv_roots: Iterable[Path],
    user: str,
    report: Report,
    uv: str | None = None,
    uv_versions: Iterable[str] = (),
) -> list[StackPython]:
    """Fill the store from what this machine has (and uv); what is installed afterwards."""
    installed = {p.version: p for p in store.pythons()}
    for exe in system_interpreters():
        try:
            version = run_checked(exe, None, user)
        except StackError as e:
            report(f"skipped {exe}: {e}")
            continue
        if VERSION.fullmatch(version) and version not in installed:
            installed[version] = StackPython(version, str(exe), "system")
            report(f"Python {version}: the system's {exe}")
    for prefix in pyenv_prefixes(pyenv_roots):
        version, source = prefix.name, f"pyenv {prefix}"
        current = installed.get(version)
        if current is not None and current.source in (source, "system"):
            report(f"Python {version}: already installed ({current.path})")
            continue
        dest = store.root / "python" / version
        try:
            exe = copy_pyenv(prefix, dest)
            run_checked(exe, dest, user)
        except (StackError, OSError) as e:
            shutil.rmtree(dest, ignore_errors=True)
            report(f"skipped pyenv's {version}: {e}")
            continue
        installed[version] = StackPython(version, str(exe), source)
        report(f"Python {version}: copied from {prefix} to {dest}; runs there as {user}")
    for spec in uv_versions:
        installed.update({p.version: p for p in uv_install(store, uv, spec, user, report)})
    store.save(installed.values())
    return store.pythons()


def uv_install(store: StackStore, uv: str | None, spec: str, user: str, report: Report) -> list[StackPython]:
    """``uv python install SPEC`` into ``<root>/uv``; nothing (and a reason) without internet."""
    if uv is None:
        report(f"Python {spec}: not fetched (uv is not installed)")
        return []
    target = store.root / "uv"
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(target),
        "UV_PYTHON_INSTALL_DIR": str(target),
        "UV_HTTP_TIMEOUT": "20",
        "UV_NO_CONFIG": "1",
    }
    env.update(
        {
            k: v
            for k, v in os.environ.items()
            if k.lower().endswith("_proxy") or k.startswith("UV_PYTHON_INSTALL_MIRROR")
        }
    )
    try:
        proc = subprocess.run(
            [uv, "python", "install", "--no-bin", spec], capture_output=True, text=True, timeout=300, env=env
        )
    except subprocess.TimeoutExpired:
        report(f"Python {spec}: not fetched (uv python install took over 300 s; no internet?)")
        return []
    except OSError as e:
        report(f"Python {spec}: not fetched (could not run {uv}: {e.strerror})")
        return []
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()] or ["no output"]
        why = lines[0] if lines[0] == lines[-1] else f"{lines[0]} … {lines[-1]}"
        report(f"Python {spec}: not fetched (uv python install failed: {why})")
        return []
    found = []
    for exe in sorted(target.glob("cpython-*/bin/python3")):
        try:
            version = run_checked(exe, exe.parent.parent, user)
        except StackError as e:
            report(f"skipped uv's {exe}: {e}")
            continue
        found.append(StackPython(version, str(exe), "uv"))
        report(f"Python {version}: installed by uv python install in {exe.parent.parent}")
    return found
