"""Turn the app's dependency declaration into one pinned requirements file for pip.

Why: pip is the one installer here that works against the package registry alone, so
Pipfile.lock, poetry.lock and uv.lock are read (they already pin every package) and
written out as ``name==version`` lines. ``pyproject.toml`` without a lock file gives its
PEP 621 ``[project] dependencies``; when it also declares a ``[build-system]`` the
project itself is installed (``pip install .``, never editable: an editable install
would bake the build directory's path into a ``.pth`` file).

Order: requirements.txt, Pipfile.lock, poetry.lock, uv.lock, pyproject.toml, setup.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class LockError(Exception):
    """The declaration cannot be read; the message names the file and the problem."""


@dataclass
class Plan:
    #: The file the dependencies came from (for messages).
    source: str
    #: Requirement lines, or the path of the app's own requirements.txt.
    lines: list[str] = field(default_factory=list)
    requirements_file: Path | None = None
    #: Also ``pip install .`` (the project declares a build system).
    install_project: bool = False
    #: Package indexes the declaration names (Pipfile ``[[source]]``); pip uses the
    #: machine's configured index instead, and the build output says so.
    named_indexes: list[str] = field(default_factory=list)


def plan(build_dir: Path) -> Plan:
    req = build_dir / "requirements.txt"
    if req.is_file():
        return Plan("requirements.txt", requirements_file=req)
    if (build_dir / "Pipfile.lock").is_file():
        lines, indexes = _pipfile_lock(build_dir / "Pipfile.lock")
        return Plan("Pipfile.lock", lines, named_indexes=indexes)
    if (build_dir / "poetry.lock").is_file():
        return Plan("poetry.lock", _poetry_lock(build_dir / "poetry.lock"))
    if (build_dir / "uv.lock").is_file():
        return Plan("uv.lock", _uv_lock(build_dir / "uv.lock"))
    pp = build_dir / "pyproject.toml"
    if pp.is_file():
        data = _toml(pp)
        project = data.get("project")
        if not isinstance(project, dict):
            raise LockError("pyproject.toml has no [project] table (PEP 621); declare dependencies there")
        deps = project.get("dependencies", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise LockError("pyproject.toml [project] dependencies must be a list of requirement strings")
        return Plan("pyproject.toml", list(deps), install_project="build-system" in data)
    if (build_dir / "setup.py").is_file():
        return Plan("setup.py", [], install_project=True)
    if (build_dir / "Pipfile").is_file():
        raise LockError("Pipfile found without Pipfile.lock; run `pipenv lock` and commit Pipfile.lock")
    return Plan("(no dependency file)", [])


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise LockError(f"{path.name} is not valid TOML: {e}") from None


def _line(name: str, version: str, markers: object = None) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise LockError(f"bad package name {name!r} in the lock file")
    line = f"{name}=={version}"
    if isinstance(markers, str) and markers.strip():
        line += f" ; {markers.strip()}"
    return line


def _pipfile_lock(path: Path) -> tuple[list[str], list[str]]:
    """The pinned default packages, and the ``url`` of each ``[[source]]``."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LockError(f"Pipfile.lock is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise LockError("Pipfile.lock is not a JSON object; run `pipenv lock` again")
    sources = data.get("_meta", {}).get("sources", [])
    indexes = [str(src["url"]) for src in sources if isinstance(src, dict) and src.get("url")]
    lines = []
    for name, entry in sorted(data.get("default", {}).items()):
        version = entry.get("version", "")
        if not version.startswith("=="):
            raise LockError(
                f"Pipfile.lock pins {name} without a registry version (git or path dependencies "
                "are not supported); pin it to a released version"
            )
        lines.append(_line(name, version[2:], entry.get("markers")))
    return lines, indexes


def _poetry_lock(path: Path) -> list[str]:
    """The main group's packages: by their ``groups`` (Poetry 2) or ``category`` (up to 1.4).

    Poetry 1.5–1.8 record neither; then the main group is what the pyproject's
    ``[tool.poetry.dependencies]`` (or ``[project] dependencies``) lead to in the lock.
    """
    data = _toml(path)
    packages = data.get("package", [])
    main = None
    if not any("groups" in p or "category" in p for p in packages):
        main = _poetry_main_names(path.parent, packages)
    lines = []
    for pkg in packages:
        groups = pkg.get("groups") or [pkg.get("category", "main")]
        if "main" not in groups or (main is not None and _norm(pkg["name"]) not in main):
            continue
        source = pkg.get("source", {})
        if source.get("type") not in (None, "legacy", "pypi"):
            raise LockError(
                f"poetry.lock installs {pkg['name']} from a {source.get('type')} source; not supported"
            )
        markers = pkg.get("markers")
        if isinstance(markers, dict):
            markers = markers.get("main")
        lines.append(_line(pkg["name"], pkg["version"], markers))
    return lines


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _poetry_main_names(app: Path, packages: list[dict]) -> set[str] | None:
    """Names reachable from the project's own dependencies; None without a pyproject."""
    pp = app / "pyproject.toml"
    if not pp.is_file():
        return None
    data = _toml(pp)
    roots = [n for n in data.get("tool", {}).get("poetry", {}).get("dependencies", {}) if n != "python"]
    roots += [
        re.split(r"[\s\[<>=!~;(]", d, maxsplit=1)[0] for d in data.get("project", {}).get("dependencies", [])
    ]
    by_name = {_norm(p["name"]): p for p in packages}
    wanted: set[str] = set()
    todo = [_norm(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in wanted or name not in by_name:
            continue
        wanted.add(name)
        todo += [_norm(d) for d in by_name[name].get("dependencies", {})]
    return wanted


def _uv_lock(path: Path) -> list[str]:
    """Walk the graph from the project itself, leaving out its dev dependencies."""
    data = _toml(path)
    packages = {p["name"]: p for p in data.get("package", [])}
    roots = [p for p in packages.values() if {"editable", "virtual"} & set(p.get("source", {}))]
    if not roots:
        raise LockError(
            "uv.lock has no project package (source = editable/virtual); was it made by `uv lock`?"
        )
    wanted: dict[str, str | None] = {}
    todo = [(d, None) for r in roots for d in r.get("dependencies", [])]
    while todo:
        dep, marker = todo.pop()
        name = dep["name"]
        if name in wanted:
            continue
        pkg = packages.get(name)
        if pkg is None:
            raise LockError(f"uv.lock lists {name} as a dependency but has no entry for it")
        wanted[name] = dep.get("marker", marker)
        todo += [(d, None) for d in pkg.get("dependencies", [])]
        for extra in dep.get("extra", []):
            todo += [(d, None) for d in pkg.get("optional-dependencies", {}).get(extra, [])]
    root_names = {r["name"] for r in roots}
    return [_line(n, packages[n]["version"], m) for n, m in sorted(wanted.items()) if n not in root_names]
