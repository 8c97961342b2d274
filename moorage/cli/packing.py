"""Packing the current directory for ``moorage deploy``: a tar.gz minus ignored files.

Why both files: ``.gitignore`` keeps what git would not commit (virtualenvs, caches,
secrets in ``.env``) out of the upload, and ``.slugignore`` (Heroku's) keeps files that
are committed but not needed at run time (tests, docs) out of the release. Inside a git
work tree git itself lists the files (``git ls-files``), so nested ``.gitignore`` files
and global excludes behave exactly as in git; elsewhere the top ``.gitignore`` is read
with the same pattern rules. ``.git`` is never sent.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def parse_rules(text: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        prefix = "" if anchored else "(?:.*/)?"
        rules.append(Rule(re.compile(f"^{prefix}{body}$"), negate, dir_only))
    return rules


def _translate(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1 : end].replace("!", "^", 1) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def ignored(rules: list[Rule], rel: str, is_dir: bool) -> bool:
    result = False
    for rule in rules:
        if rule.dir_only and not is_dir:
            continue
        if rule.regex.match(rel):
            result = not rule.negate
    return result


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def list_files(root: Path) -> list[str]:
    """Relative paths to upload (files and symlinks), sorted."""
    slug_rules = parse_rules(_read(root / ".slugignore"))
    candidates = _git_files(root)
    if candidates is None:
        candidates = _walk(root, parse_rules(_read(root / ".gitignore")))
    kept = []
    for rel in candidates:
        parts = rel.split("/")
        if ".git" in parts:
            continue
        if any(ignored(slug_rules, "/".join(parts[:n]), True) for n in range(1, len(parts))):
            continue
        if ignored(slug_rules, rel, False):
            continue
        if os.path.lexists(root / rel):
            kept.append(rel)
    return sorted(set(kept))


def _git_files(root: Path) -> list[str] | None:
    try:
        inside = subprocess.run(
            ["git", "rev-parse", "--show-prefix"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if inside.returncode != 0:
            return None
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return [p for p in out.stdout.decode(errors="surrogateescape").split("\0") if p]


def _walk(root: Path, rules: list[Rule]) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        rel_folder = "" if rel_folder == "." else rel_folder + "/"
        keep = []
        for d in dirs:
            rel = rel_folder + d
            if d == ".git" or ignored(rules, rel, True):
                continue
            if os.path.islink(os.path.join(folder, d)):
                found.append(rel)
                continue
            keep.append(d)
        dirs[:] = keep
        found.extend(rel_folder + f for f in files if not ignored(rules, rel_folder + f, False))
    return found


def source_version(root: Path) -> str | None:
    """The git commit of a clean work tree; ``None`` otherwise (the controller then uses a digest)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or dirty.returncode != 0 or dirty.stdout.strip():
        return None
    return head.stdout.strip() or None


def pack(root: Path, names: Iterable[str]) -> tuple[IO[bytes], int, str]:
    """A temporary tar.gz of ``names`` under ``root``: (file positioned at 0, size, sha1)."""
    out = tempfile.TemporaryFile()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in names:
            tar.add(root / name, arcname=name, recursive=False)
    size = out.tell()
    out.seek(0)
    digest = hashlib.sha1()
    while chunk := out.read(64 * 1024):
        digest.update(chunk)
    out.seek(0)
    return out, size, digest.hexdigest()


def chunks(fileobj: IO[bytes], size: int = 64 * 1024) -> Iterable[bytes]:
    while chunk := fileobj.read(size):
        yield chunk
