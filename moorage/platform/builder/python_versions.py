"""The Python interpreters a build is offered: the platform's interpreter store.

Why here: the Python buildpack picks an interpreter itself (a third party can run it
without Moorage), but it runs as the app's unprivileged uid and cannot look around the
machine for interpreters it may not even be able to enter. Moorage hands it the list of
the interpreter store (:mod:`moorage.platform.builder.stack`, filled by
``moorage stack:install``) as ``STACK_PYTHONS``: colon-separated ``version=path``
entries, so nothing has to be started per build to ask. Apps run the same interpreters
(the slug's venv names its interpreter's folder in ``pyvenv.cfg``).

Without a store (a machine where ``stack:install`` never ran) the system's own
interpreters are offered, which every uid can run; ``/root`` is never opened.

The machine's pip configuration goes along too (:func:`pip_index_env`): the package
indexes an operator configured for themselves (``~/.config/pip/pip.conf``, here the
local mirrors ``file:///opt/pypi/simple``) are invisible to a build, whose ``HOME`` is
its own, so they are read once with ``pip config list`` and passed as ``PIP_*``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from moorage.platform.builder.stack import StackStore, system_interpreters


def stack_pythons(stack_dir: Path) -> str:
    """The ``STACK_PYTHONS`` value for the buildpack."""
    installed = StackStore(stack_dir).pythons()
    if installed:
        return ":".join(f"{p.version}={p.path}" for p in installed)
    return ":".join(str(p) for p in system_interpreters() if os.access(p, os.X_OK))


#: pip settings that say where packages come from (pip's own names).
INDEX_KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host")


def pip_index_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``PIP_INDEX_URL`` & co. from the pip configuration ``environ``'s user sees.

    Variables already in ``environ`` are left out (builds inherit those themselves).
    """
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            env=dict(environ),
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, str] = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.partition(".")
        if section in ("global", "install") and name in INDEX_KEYS:
            var = "PIP_" + name.upper().replace("-", "_")
            if var not in environ:
                try:
                    found[var] = str(ast.literal_eval(value))
                except (ValueError, SyntaxError):
                    continue
    return found
