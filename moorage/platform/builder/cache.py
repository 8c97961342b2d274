"""Per-app build caches (the buildpacks' CACHE_DIR), kept between builds.

Why move instead of mount: a build sees only its own folders, so the cache is moved
(a rename on the same file system) from ``<data_dir>/build-cache/<app>`` into the
build's private work folder before the build, and moved back afterwards, whatever the
outcome (buildpacks write their cache keys last, so a half-written cache is noticed
and rebuilt). ``<data_dir>/build-cache`` itself is ``0700``: no build, and no app, can
reach another app's cache. The builder gives a checked-out cache to the app's build user
(its own uid when Moorage is root; files a cache kept from before, when all builds shared
one user, are given over too) and makes it ``0700``. Two builds of one app at the same
time are safe: the second simply finds no cache.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from moorage.errors import InvalidParametersError

log = logging.getLogger(__name__)

_APP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class BuildCaches:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def check_name(app: str) -> None:
        """Raise ``InvalidParametersError`` unless ``app`` is a valid app name."""
        if not _APP_NAME.fullmatch(app):
            raise InvalidParametersError(
                f"app name {app!r} is not valid (lower-case letters, digits and '-')"
            )

    def _path(self, app: str) -> Path:
        self.check_name(app)
        return self.root / app

    def check_out(self, app: str, dest: Path) -> bool:
        """Move the app's cache to ``dest`` (an empty folder is made when there is none)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        source = self._path(app)
        if source.is_dir():
            shutil.move(source, dest)
            return True
        dest.mkdir()
        return False

    def check_in(self, app: str, source: Path) -> None:
        """Keep ``source`` as the app's cache for the next build."""
        target = self._path(app)
        if target.exists():  # a concurrent build checked in first: keep the newest
            shutil.rmtree(target)
        shutil.move(source, target)

    def clear(self, app: str) -> None:
        shutil.rmtree(self._path(app), ignore_errors=True)

    def size(self, app: str) -> int:
        path = self._path(app)
        return sum(p.lstat().st_size for p in path.rglob("*")) if path.exists() else 0
