"""Make a virtualenv run from wherever the slug is unpacked.

Why: ``python -m venv`` and pip write the venv's absolute path into several files. The
slug is built in a temporary directory and unpacked into a different one for every
release, so each of those is rewritten:

* console scripts (``bin/gunicorn``, ``bin/pip``, …) start with ``#!/abs/build/.venv/bin/python``;
  they become a ``/bin/sh`` preamble that execs the ``python`` next to the script
  (the same trick pip uses for shebangs that are too long);
* ``bin/activate*`` hold ``VIRTUAL_ENV="/abs/build/.venv"``; the bash one is made to
  compute its own location, the others (csh, fish, PowerShell) are removed;
* ``pyvenv.cfg``'s informational ``command =`` line names the build path; it is dropped;
* ``.pth`` files and ``direct_url.json`` records must not point into the build
  directory; a ``.pth`` that does fails the build (an editable install slipped in).

* ``bin/python3`` is a symlink to the stack's interpreter by an absolute path; it is
  replaced by a copy of the interpreter binary (what ``venv --copies`` does; the
  standard library is still found through ``pyvenv.cfg``'s ``home``, which names the
  stack's interpreter, not the build directory). Slugs then hold only relative links,
  which every safe unpacker accepts (``tarfile``'s "data" filter refuses absolute ones).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

LAUNCHER = b"""#!/bin/sh
'''exec' "$(dirname -- "$(realpath -- "$0")")/python" "$0" "$@"
' '''
"""

ACTIVATE = """# Sourced with bash: "source .venv/bin/activate" from wherever the slug was unpacked.
VIRTUAL_ENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIRTUAL_ENV
export PATH="$VIRTUAL_ENV/bin:$PATH"
unset PYTHONHOME
deactivate () { export PATH="${PATH#"$VIRTUAL_ENV/bin:"}"; unset VIRTUAL_ENV; unset -f deactivate; }
"""


class RelocationError(Exception):
    pass


def relocate(venv: Path, build_dir: Path) -> int:
    """Rewrite the venv in place; returns how many scripts were changed."""
    changed = 0
    bin_dir = venv / "bin"
    for link in sorted(bin_dir.iterdir()):
        if link.is_symlink() and os.path.isabs(os.readlink(link)):
            target = link.resolve()
            tmp = link.with_name(f".{link.name}.relocate")
            shutil.copy2(target, tmp)
            os.replace(tmp, link)
    for script in sorted(bin_dir.iterdir()):
        if script.is_symlink() or not script.is_file():
            continue
        with script.open("rb") as f:
            head = f.read(2048)
        if not head.startswith(b"#!"):
            continue
        first, _, rest = head.partition(b"\n")
        if b"python" not in first or b"/bin/sh" in first:
            continue
        body = script.read_bytes().partition(b"\n")[2]
        _replace(script, LAUNCHER + body)
        changed += 1
    for name in ("activate.csh", "activate.fish", "Activate.ps1"):
        (bin_dir / name).unlink(missing_ok=True)
    if (bin_dir / "activate").exists():
        _replace(bin_dir / "activate", ACTIVATE.encode())
    cfg = venv / "pyvenv.cfg"
    if cfg.exists():
        lines = [ln for ln in cfg.read_text().splitlines() if not ln.startswith("command")]
        _replace(cfg, ("\n".join(lines) + "\n").encode())
    needle = str(build_dir).encode()
    for pth in venv.glob("lib/python*/site-packages/*.pth"):
        if needle in pth.read_bytes():
            raise RelocationError(
                f"{pth.name} points into the build directory (an editable install?); "
                "install packages normally, not with -e"
            )
    for record in venv.glob("lib/python*/site-packages/*.dist-info/direct_url.json"):
        if needle in record.read_bytes():
            record.unlink()
    return changed


def _replace(path: Path, data: bytes) -> None:
    """Write a new file and rename it over the old one (keeps mode; never edits in place)."""
    mode = path.stat().st_mode & 0o7777
    tmp = path.with_name(f".{path.name}.relocate")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
