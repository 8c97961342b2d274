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
"""

from __future__ import annotations

import os
from pathlib import Path

from moorage.platform.builder.stack import StackStore, system_interpreters


def stack_pythons(stack_dir: Path) -> str:
    """The ``STACK_PYTHONS`` value for the buildpack."""
    installed = StackStore(stack_dir).pythons()
    if installed:
        return ":".join(f"{p.version}={p.path}" for p in installed)
    return ":".join(str(p) for p in system_interpreters() if os.access(p, os.X_OK))
