"""Which Python runs the app: the app's pin matched against the interpreters on this machine.

Why the buildpack decides this itself: a third party can run the buildpack without
Moorage. Interpreters come from ``STACK_PYTHONS`` when present (colon-separated
entries, each a path or ``3.12.1=/path/to/python3``; Moorage's builder sets it, with
versions, so nothing has to be started to ask), else from the usual places:
``/usr/bin``, ``/usr/local/bin`` and pyenv's ``versions/*/bin``. Only Python 3 counts.

The pin is read from ``.python-version`` (pyenv style, ``3.12`` or ``3.12.1``),
``runtime.txt`` (``python-3.12.1``, ``python-3.5.x``), the Pipfile's ``[requires]``
(``python_version = "3.6"``, ``python_full_version``; ``Pipfile.lock``'s copy first) or
``requires-python`` in ``pyproject.toml`` (a PEP 440 specifier set), in that order.
With no pin the newest interpreter wins; ``3.13`` takes the newest 3.13.x. An exact
version file pin (``3.11.3``) is honoured exactly when that version is here; when only
other patches of its minor are, the newest of them is used with a warning naming both
(CPython's patch releases are compatible, and patch pins that differ from what is
installed are the most common reason real apps fail to build).
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path


class PinError(Exception):
    """The app's pin is malformed or no interpreter here satisfies it."""


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: tuple[int, int, int]

    @property
    def text(self) -> str:
        return ".".join(map(str, self.version))


def candidates(env: dict[str, str]) -> list[str]:
    listed = env.get("STACK_PYTHONS", "")
    if listed:
        return [p for p in listed.split(":") if p]
    roots = [env.get("PYENV_ROOT", ""), "/root/.pyenv", os.path.expanduser("~/.pyenv")]
    found = sorted(glob.glob("/usr/bin/python3.*") + glob.glob("/usr/local/bin/python3.*"))
    for root in filter(None, roots):
        found += sorted(glob.glob(f"{root}/versions/*/bin/python3"))
    return [p for p in found if re.search(r"python3(\.\d+)?$", p)]


def discover(env: dict[str, str]) -> list[Interpreter]:
    """Every usable Python 3 interpreter, newest first, one per exact version."""
    seen: dict[tuple[int, int, int], Interpreter] = {}
    for entry in candidates(env):
        known, _, path = entry.rpartition("=")
        if not os.access(path, os.X_OK):
            continue
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", known)
        if m:
            version = (int(m[1]), int(m[2]), int(m[3]))
            if version[0] == 3 and version not in seen:
                seen[version] = Interpreter(path, version)
            continue
        try:
            out = subprocess.run(
                [path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", out)
        if not m:
            continue
        version = (int(m[1]), int(m[2]), int(m[3]))
        if version[0] == 3 and version not in seen:
            seen[version] = Interpreter(path, version)
    return sorted(seen.values(), key=lambda i: i.version, reverse=True)


def read_pin(build_dir: Path) -> tuple[str, str] | None:
    """``(source file, specifier)`` where the specifier is a PEP 440 specifier set."""
    pv = build_dir / ".python-version"
    if pv.is_file():
        for line in pv.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                if not re.fullmatch(r"\d+(\.\d+){0,2}", line):
                    raise PinError(f".python-version says {line!r}; write a version such as 3.12 or 3.12.1")
                return ".python-version", _prefix_spec(line)
    rt = build_dir / "runtime.txt"
    if rt.is_file():
        text = rt.read_text().strip()
        m = re.fullmatch(r"python-(\d+(?:\.\d+){0,2}?)(\.x)?", text)
        if not m:
            raise PinError(f"runtime.txt says {text!r}; write python-3.x.y, for example python-3.12.1")
        return "runtime.txt", _prefix_spec(m[1])
    pipfile = _pipfile_pin(build_dir)
    if pipfile is not None:
        return pipfile
    pp = build_dir / "pyproject.toml"
    if pp.is_file():
        try:
            data = tomllib.loads(pp.read_text())
        except tomllib.TOMLDecodeError as e:
            raise PinError(f"pyproject.toml is not valid TOML: {e}") from None
        spec = data.get("project", {}).get("requires-python")
        if spec:
            return "pyproject.toml requires-python", str(spec)
    return None


def _pipfile_pin(build_dir: Path) -> tuple[str, str] | None:
    """``[requires]`` of the Pipfile: ``python_full_version`` (exact) or ``python_version``."""
    requires: object = None
    lock, pipfile = build_dir / "Pipfile.lock", build_dir / "Pipfile"
    if lock.is_file():
        try:
            requires = json.loads(lock.read_text()).get("_meta", {}).get("requires")
        except (ValueError, AttributeError):
            requires = None  # lockfiles.py reports a broken Pipfile.lock
        source = "Pipfile.lock"
    if not isinstance(requires, dict) and pipfile.is_file():
        try:
            requires = tomllib.loads(pipfile.read_text()).get("requires")
        except tomllib.TOMLDecodeError as e:
            raise PinError(f"Pipfile is not valid TOML: {e}") from None
        source = "Pipfile"
    if not isinstance(requires, dict):
        return None
    for key in ("python_full_version", "python_version"):
        value = str(requires.get(key, "")).strip()
        if value:
            if not re.fullmatch(r"\d+(\.\d+){0,2}", value):
                raise PinError(f'{source} [requires] {key} = "{value}"; write a version such as "3.12"')
            return f"{source} [requires] {key}", _prefix_spec(value)
    return None


def _prefix_spec(version: str) -> str:
    # "3.12" means any 3.12.x; "3.12.1" means exactly that.
    return f"=={version}" if version.count(".") == 2 else f"=={version}.*"


def _parse(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _pad(v: tuple[int, ...], n: int = 3) -> tuple[int, ...]:
    return v + (0,) * (n - len(v))


def satisfies(version: tuple[int, int, int], spec: str) -> bool:
    """Evaluate a PEP 440 specifier set for a final release (enough for interpreters)."""
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.fullmatch(r"(~=|==|!=|<=|>=|<|>|===)\s*(\d+(?:\.\d+)*)(\.\*)?", clause)
        if not m:
            raise PinError(f"cannot read the Python version specifier {clause!r} (in {spec!r})")
        op, raw, wildcard = m[1], m[2], m[3]
        want = _parse(raw)
        if wildcard:
            if op not in {"==", "!="}:
                raise PinError(f"a wildcard is only allowed with == or != (in {spec!r})")
            if (op == "==") != (version[: len(want)] == want):
                return False
            continue
        have, target = _pad(version, max(3, len(want))), _pad(want, max(3, len(want)))
        ok = {
            "==": have == target,
            "===": have == target,
            "!=": have != target,
            "<=": have <= target,
            ">=": have >= target,
            "<": have < target,
            ">": have > target,
        }.get(op)
        if op == "~=":
            if len(want) < 2:
                raise PinError(f"~= needs at least two version parts (in {spec!r})")
            ok = have >= target and version[: len(want) - 1] == want[:-1]
        if not ok:
            return False
    return True


def choose(build_dir: Path, env: dict[str, str]) -> tuple[Interpreter, str, str | None]:
    """The interpreter to use, a sentence saying why, and a warning to show (or None)."""
    available = discover(env)
    if not available:
        raise PinError("no Python 3 interpreter was found on this machine")
    listing = ", ".join(i.text for i in available)
    pin = read_pin(build_dir)
    if pin is None:
        return available[0], f"the newest available (no pin; available: {listing})", None
    source, spec = pin
    for interp in available:
        if satisfies(interp.version, spec):
            return interp, f"pinned by {source} ({spec})", None
    exact = re.fullmatch(r"==(\d+)\.(\d+)\.(\d+)", spec)
    if exact and "requires-python" not in source:
        wanted, minor = f"{exact[1]}.{exact[2]}.{exact[3]}", (int(exact[1]), int(exact[2]))
        same_minor = [i for i in available if i.version[:2] == minor]
        if same_minor:
            best = same_minor[0]
            return (
                best,
                f"the newest {minor[0]}.{minor[1]} here, for {source}'s {wanted}",
                f"{source} asks for Python {wanted}, which is not installed; using Python {best.text}, "
                f"the newest {minor[0]}.{minor[1]} here (CPython's patch releases are compatible). "
                f"Pin {best.text} to build with exactly what runs",
            )
    raise PinError(
        f"{source} asks for Python {spec}, which no interpreter on this machine satisfies. "
        f"Available: {listing}. Change the pin to one of these."
    )
