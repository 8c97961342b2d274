"""Making slugs: the compiled build directory as a tar.gz, and its size limit.

Why: a slug is what a release runs; it is made once per build and unpacked into a fresh
directory for every release (deis slugbuilder's format: the *contents* of the build
directory as ``./…`` paths, without ``.git``). Where slugs are kept is
``moorage.platform.slug_store``, a leaf the runtime and the controller use too.

``.slugignore`` uses Heroku's rules: one pattern per line, ``#`` comments; a pattern
with a ``/`` is anchored at the app's root, one without matches a name at any depth;
matches are removed before the buildpacks run.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from pathlib import Path

from moorage.platform.builder.processes import BuildFailed

#: gzip -1 packs a typical slug (a venv) ~2.5x faster than the default -6 for ~14% more bytes;
#: slugs are packed on every build, so build time wins.
GZIP_LEVEL = 1


def read_slugignore(build_dir: Path) -> list[str]:
    path = build_dir / ".slugignore"
    if not path.is_file():
        return []
    lines = (ln.strip() for ln in path.read_text(errors="replace").splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


def apply_slugignore(build_dir: Path) -> list[str]:
    """Delete what ``.slugignore`` names; returns the removed paths (relative, sorted)."""
    patterns = read_slugignore(build_dir)
    removed: list[str] = []
    if not patterns:
        return removed
    for folder, dirs, files in os.walk(build_dir, topdown=True):
        rel_folder = os.path.relpath(folder, build_dir)
        for name in [*dirs, *files]:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if _ignored(rel, name, patterns):
                path = Path(folder, name)
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                    dirs.remove(name)
                else:
                    path.unlink()
                removed.append(rel)
    return sorted(removed)


def _ignored(rel: str, name: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if "/" in pattern:
            if fnmatch.fnmatchcase(rel, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def make_slug(build_dir: Path, dest: Path, max_mb: int) -> int:
    """Pack ``build_dir`` into ``dest`` (tar.gz); returns its size in bytes.

    Raises :class:`BuildFailed` naming the size and the limit when it is too big.
    """
    proc = subprocess.run(
        [
            "tar",
            "--create",
            f"--use-compress-program=gzip -{GZIP_LEVEL}",
            "--file",
            str(dest),
            "--directory",
            str(build_dir),
            "--exclude=./.git",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            ".",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BuildFailed(f"could not pack the slug: {proc.stderr.strip()}")
    size = dest.stat().st_size
    if size > max_mb * 1024 * 1024:
        raise BuildFailed(
            f"the slug is {size / 1024 / 1024:.1f} MB compressed, over the {max_mb} MB limit. "
            "Leave big files out with .slugignore, or raise MOORAGE_PLATFORM_SLUG_MAX_MB"
        )
    return size
