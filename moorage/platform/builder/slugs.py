"""Slugs: the compiled build directory as a tar.gz, its size limit, and where slugs are kept.

Why: a slug is what a release runs; it is made once per build and unpacked into a fresh
directory for every release (deis slugbuilder's format: the *contents* of the build
directory as ``./…`` paths, without ``.git``). The store is a directory by default
(``<data_dir>/slugs/<app>/<id>.tgz``) and S3-compatible storage when
``settings.platform.slug_store_url`` is ``s3://bucket/prefix`` (through
``moorage.clients.s3_slugs``, the only place boto3 is imported). When an app is
destroyed, :func:`forget_app` removes its slugs from the store: each recorded reference,
then whatever is left under the app's folder or key prefix.

``.slugignore`` uses Heroku's rules: one pattern per line, ``#`` comments; a pattern
with a ``/`` is anchored at the app's root, one without matches a name at any depth;
matches are removed before the buildpacks run.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import BinaryIO, Protocol

from moorage.errors import ConfigurationError, Error, NotFoundError
from moorage.platform.builder.processes import BuildFailed
from moorage.settings import Settings

log = logging.getLogger(__name__)

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


def unpack_slug(slug: Path, dest: Path) -> None:
    """Unpack a slug; members that would land outside ``dest`` are refused."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(slug) as archive:
        archive.extractall(dest, filter="data")


class SlugStore(Protocol):
    def put(self, app: str, slug_id: str, path: Path) -> str:
        """Keep the slug; returns its reference (a path or an ``s3://`` URL)."""

    def fetch(self, ref: str, dest: Path) -> Path:
        """Copy the slug named by ``ref`` to ``dest``."""

    def open(self, ref: str) -> BinaryIO:
        """The slug named by ``ref`` as a stream; NotFoundError when there is none."""

    def delete(self, ref: str) -> None:
        """Remove the slug named by ``ref`` (gone already counts as removed).

        NotFoundError when ``ref`` is not a slug of this store.
        """

    def delete_app(self, app: str) -> int:
        """Remove every slug kept for ``app``; returns how many were removed."""


def private_dir(path: Path) -> Path:
    """``path``, made when missing, entered by Moorage alone (``0700``): no app reads in it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


class DirectorySlugStore:
    """Slugs as ``<root>/<app>/<id>.tgz``; ``root`` is ``0700`` (the runtime unpacks them as root)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, app: str, slug_id: str, path: Path) -> str:
        folder = private_dir(private_dir(self.root) / app)
        target = folder / f"{slug_id}.tgz"
        tmp = folder / f".{slug_id}.tgz.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out, path.open("rb") as source:
            shutil.copyfileobj(source, out, 1024 * 1024)
        os.replace(tmp, target)
        return str(target)

    def fetch(self, ref: str, dest: Path) -> Path:
        source = Path(ref)
        if not source.is_file():
            raise NotFoundError(f"slug {ref} is not in the slug store")
        shutil.copyfile(source, dest)
        return dest

    def open(self, ref: str) -> BinaryIO:
        source = Path(ref)
        if not source.is_file() or not source.resolve().is_relative_to(self.root.resolve()):
            raise NotFoundError(f"slug {ref} is not in the slug store")
        return source.open("rb")

    def delete(self, ref: str) -> None:
        path = Path(ref)
        if not path.resolve().is_relative_to(self.root.resolve()) or path.is_dir():
            raise NotFoundError(f"{ref} is not a slug in {self.root}")
        path.unlink(missing_ok=True)

    def delete_app(self, app: str) -> int:
        folder = self.root / app
        if not folder.is_dir():
            return 0
        count = sum(1 for path in folder.iterdir() if path.suffix == ".tgz")
        shutil.rmtree(folder)
        return count


class S3SlugStore:
    def __init__(self, url: str, settings: Settings) -> None:
        from moorage.clients import s3_slugs

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigurationError(f"slug store URL {url!r} names no bucket; use s3://bucket/prefix")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._s3 = s3_slugs.SlugBucket(bucket, settings.aws)

    def put(self, app: str, slug_id: str, path: Path) -> str:
        key = "/".join(filter(None, [self.prefix, app, f"{slug_id}.tgz"]))
        self._s3.upload(path, key)
        return f"s3://{self.bucket}/{key}"

    def _key(self, ref: str) -> str:
        prefix = f"s3://{self.bucket}/"
        if not ref.startswith(prefix):
            raise NotFoundError(f"slug {ref} is not in this store (s3://{self.bucket})")
        return ref[len(prefix) :]

    def fetch(self, ref: str, dest: Path) -> Path:
        self._s3.download(self._key(ref), dest)
        return dest

    def open(self, ref: str) -> BinaryIO:
        return self._s3.open(self._key(ref))

    def delete(self, ref: str) -> None:
        self._s3.delete(self._key(ref))

    def delete_app(self, app: str) -> int:
        # The trailing slash keeps ``shop`` from matching the slugs of ``shop-2``.
        return self._s3.delete_prefix("/".join(filter(None, [self.prefix, app])) + "/")


def store_from_settings(settings: Settings) -> SlugStore:
    url = settings.platform.slug_store_url
    if not url:
        return DirectorySlugStore(settings.data_dir / "slugs")
    if url.startswith("s3://"):
        return S3SlugStore(url, settings)
    raise ConfigurationError(
        f"MOORAGE_PLATFORM_SLUG_STORE_URL={url!r}: use s3://bucket/prefix or leave it empty"
    )


def forget_app(store: SlugStore, app: str, refs: list[str]) -> list[str]:
    """Delete the slugs of a destroyed app: each of ``refs``, then the rest of its folder.

    Never raises: a slug that cannot be deleted must not stop the destroy. Returns what
    went wrong (one line each, also logged); references the store does not hold (the
    source trees of Procfile-only builds, slugs of another store) are skipped.
    """
    problems: list[str] = []
    for ref in refs:
        try:
            store.delete(ref)
        except NotFoundError:
            continue  # not in this store
        except (Error, OSError) as exc:
            problems.append(f"slug {ref}: {exc}")
    try:
        store.delete_app(app)
    except (Error, OSError) as exc:
        problems.append(f"slugs of {app}: {exc}")
    for problem in problems:
        log.warning("could not delete a slug of a destroyed app: %s", problem, extra={"app": app})
    return problems
