"""Unpacking uploaded source tarballs without trusting them.

Why by hand: an uploaded tarball is hostile input. A member named ``../x`` or ``/etc/x``,
a symlink or hardlink pointing out of the tree, a device file or fifo, or a few kilobytes
that expand to gigabytes must all be refused with a clear message, and nothing may be
written outside the target. So members are checked one by one, regular files are written
with ``O_NOFOLLOW | O_EXCL`` into a fresh directory while their bytes are counted,
symlinks are created last and each is resolved against the tree, and any refusal deletes
the whole directory. The caller moves the finished tree into place.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from moorage.errors import InvalidParametersError

CHUNK = 64 * 1024
MAX_MEMBERS = 100_000


def extract_tarball(fileobj: IO[bytes], parent: Path, max_bytes: int) -> Path:
    """Extract a (gzipped) tar into a new directory under ``parent`` and return it.

    Raises InvalidParametersError naming the offending member; the directory is removed.
    """
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=".incoming-", dir=parent))
    try:
        _extract(fileobj, root, max_bytes)
        root.chmod(0o755)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def _clean_name(name: str) -> str:
    """The member's path relative to the root, or an error for absolute/escaping names."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise InvalidParametersError(f"the tarball holds an absolute path {name!r}; paths must be relative")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParametersError(f"the tarball holds a path leading out of the source tree: {name!r}")
    return "/".join(parts)


@dataclass
class _Tally:
    """What the members seen so far add up to: bytes written, the files (a hard link may
    only name one of them) and the symlinks still to place."""

    total: int = 0
    count: int = 0
    files: set[str] = field(default_factory=set)
    links: list[tuple[str, str]] = field(default_factory=list)


def _extract(fileobj: IO[bytes], root: Path, max_bytes: int) -> None:
    """Write every member under ``root``, then the symlinks; damage becomes a clear 400."""
    try:
        archive = tarfile.open(fileobj=fileobj, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidParametersError(f"the upload is not a readable tar or tar.gz archive ({exc})") from None
    tally = _Tally()
    with archive:
        try:
            for member in archive:
                tally.count += 1
                if tally.count > MAX_MEMBERS:
                    raise InvalidParametersError(f"the tarball has more than {MAX_MEMBERS} entries")
                _extract_member(archive, member, root, tally, max_bytes)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, FileExistsError):
                raise InvalidParametersError(f"the tarball holds {exc.filename!r} twice") from None
            raise InvalidParametersError(f"the tarball is damaged or truncated ({exc})") from None
    _place_links(root, tally.links)


def _extract_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, root: Path, tally: _Tally, max_bytes: int
) -> None:
    """One member: folders and files are written now, symlinks noted for later (a link
    written early could redirect a later file out of the tree); anything else is refused."""
    rel = _clean_name(member.name)
    if not rel:
        return
    target = root / rel
    if member.isdir():
        _ensure_dir(root, target)
    elif member.isreg():
        _ensure_dir(root, target.parent)
        tally.total = _write_file(archive, member, root, target, tally.total, max_bytes)
        tally.files.add(rel)
    elif member.issym():
        _check_symlink(rel, member.linkname)
        tally.links.append((rel, member.linkname))
    elif member.islnk():
        _hard_link(member, root, rel, tally, max_bytes)
    else:
        kind = "device file" if (member.ischr() or member.isblk()) else "fifo or special file"
        raise InvalidParametersError(f"the tarball holds a {kind} {member.name!r}; only files are allowed")


def _hard_link(member: tarfile.TarInfo, root: Path, rel: str, tally: _Tally, max_bytes: int) -> None:
    """A hard link becomes a copy of a file extracted earlier, counted against the limit
    like the file itself (else links would multiply a small upload)."""
    source = _clean_name(member.linkname)
    if source not in tally.files:
        raise InvalidParametersError(
            f"the tarball holds a hard link {member.name!r} to {member.linkname!r}, "
            "which is not a file earlier in the archive"
        )
    target = root / rel
    _ensure_dir(root, target.parent)
    tally.total += (root / source).stat().st_size
    if tally.total > max_bytes:
        raise _too_big(max_bytes)
    _copy_file(root / source, target, member.mode)
    tally.files.add(rel)


def _place_links(root: Path, links: list[tuple[str, str]]) -> None:
    """Create the symlinks once every file is in place, then refuse any that resolves
    out of the tree (through other links too)."""
    for rel, linkname in links:
        target = root / rel
        _ensure_dir(root, target.parent)
        if os.path.lexists(target):
            raise InvalidParametersError(
                f"the tarball holds {rel!r} both as a symlink and as a file or folder"
            )
        os.symlink(linkname, target)
    real_root = os.path.realpath(root)
    for rel, linkname in links:
        resolved = os.path.realpath(root / rel)
        if resolved != real_root and not resolved.startswith(real_root + os.sep):
            raise InvalidParametersError(
                f"the tarball holds a symlink {rel!r} -> {linkname!r} leading out of the tree"
            )


def _too_big(max_bytes: int) -> InvalidParametersError:
    return InvalidParametersError(
        f"the source unpacks to more than {max_bytes // (1024 * 1024)} MB; leave build output and "
        "dependencies out (.slugignore) or raise MOORAGE_PLATFORM_SLUG_MAX_MB"
    )


def _check_symlink(rel: str, linkname: str) -> None:
    if linkname.startswith("/"):
        raise InvalidParametersError(
            f"the tarball holds a symlink {rel!r} -> {linkname!r} leading out of the tree"
        )
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), linkname))
    if joined == ".." or joined.startswith("../"):
        raise InvalidParametersError(
            f"the tarball holds a symlink {rel!r} -> {linkname!r} leading out of the tree"
        )


def _ensure_dir(root: Path, path: Path) -> None:
    """Create ``path`` (inside root) as real directories, never through a symlink."""
    rel = path.relative_to(root)
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            raise InvalidParametersError(
                f"the tarball writes through a symlink at {str(current.relative_to(root))!r}"
            )
        if not current.exists():
            current.mkdir(mode=0o755)
        elif not current.is_dir():
            raise InvalidParametersError(
                f"the tarball holds {str(current.relative_to(root))!r} as a file and a folder"
            )


def _mode(mode: int) -> int:
    return 0o755 if mode & 0o111 else 0o644


def _write_file(
    archive: tarfile.TarFile, member: tarfile.TarInfo, root: Path, target: Path, total: int, max_bytes: int
) -> int:
    source = archive.extractfile(member)
    assert source is not None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _mode(member.mode))
    with os.fdopen(fd, "wb") as out, source:
        while chunk := source.read(CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise _too_big(max_bytes)
            out.write(chunk)
    return total


def _copy_file(source: Path, target: Path, mode: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _mode(mode))
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, CHUNK)
