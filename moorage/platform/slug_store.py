"""The slug store: where the slugs releases run from are kept, and how they are unpacked.

Why a leaf of its own: the builder puts slugs in, the runtime unpacks them, and the
controller deletes them when an app is destroyed; none of those should import another
for it. The store is a directory by default (``<data_dir>/slugs/<app>/<id>.tgz``) and
S3-compatible storage when ``settings.platform.slug_store_url`` is ``s3://bucket/prefix``
(through ``moorage.clients.s3_slugs``, the only place boto3 is imported). When an app is
destroyed, :func:`forget_app` removes its slugs from the store: each recorded reference,
then whatever is left under the app's folder or key prefix.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
from pathlib import Path
from typing import BinaryIO, Protocol

from moorage.errors import ConfigurationError, Error, NotFoundError
from moorage.settings import Settings

log = logging.getLogger(__name__)


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
