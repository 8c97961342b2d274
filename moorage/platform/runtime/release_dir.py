"""Release directories and the environment a process of a release starts in.

Why: a release is immutable. Its files are copied once into
``<data_dir>/releases/<app>/v<N>/`` (from the slug directory or a local ``.tar.gz``
slug), made read-only for the app user and unreadable for every other app
(:func:`app_releases`), and every process of that release, including
one-off ``run`` commands and restarts, starts from that copy, whatever happens to the
build's folder afterwards.

Commands run as on Heroku: ``/bin/bash -c`` with the config exported, after sourcing
``.profile.d/*.sh`` from the release directory (buildpacks put their PATH and the like
there), so ``$PORT``, ``${PORT:-5000}``, ``&&`` and ``# comments`` work.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from moorage.errors import InvalidParametersError, NotFoundError
from moorage.platform.identity import AppUser, ensure_reachable, limit_argv
from moorage.platform.runtime.base import ReleaseSpec
from moorage.settings import PlatformSettings

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

_PROFILE = 'for __f in .profile.d/*.sh; do if [ -r "$__f" ]; then . "$__f"; fi; done; unset __f\n'


def release_path(data_dir: Path, app: str, version: int) -> Path:
    return data_dir / "releases" / app / f"v{version}"


#: Downloads a slug reference (``s3://…``) to a local file: ``fetch(ref, dest) -> dest``.
Fetch = Callable[[str, Path], Path]


def prepare(data_dir: Path, release: ReleaseSpec, user: AppUser, fetch: Fetch | None = None) -> Path:
    """The release's immutable directory, created on first use (atomically).

    A slug kept in remote storage (``s3://…``) is downloaded with ``fetch`` first.
    """
    target = release_path(data_dir, release.app, release.version)
    parent = app_releases(data_dir, release.app, user)
    if target.is_dir():
        return target
    if "://" in release.slug:
        if fetch is None:
            raise InvalidParametersError(
                f"slug {release.slug} is in remote storage, but no slug store is configured "
                "(MOORAGE_PLATFORM_SLUG_STORE_URL)"
            )
        download = Path(tempfile.mkdtemp(prefix=".slug-", dir=data_dir))
        try:
            local = fetch(release.slug, download / "slug.tgz")
            return prepare(data_dir, replace(release, slug=str(local)), user)
        finally:
            shutil.rmtree(download, ignore_errors=True)
    source = Path(release.slug)
    if not source.exists():
        raise NotFoundError(
            f"the files of {release.app} v{release.version} are missing: {release.slug} does not exist"
        )
    staging = Path(tempfile.mkdtemp(prefix=f".v{release.version}-", dir=parent))
    try:
        if source.is_dir():
            shutil.copytree(source, staging, symlinks=True, dirs_exist_ok=True)
        elif tarfile.is_tarfile(source):
            with tarfile.open(source) as archive:
                archive.extractall(staging, filter="data")
        else:
            raise InvalidParametersError(f"slug {release.slug} is neither a directory nor a tar archive")
        _make_read_only(staging, user)
        os.replace(staging, target)
    except BaseException:
        remove_tree(staging)
        raise
    return target


def remove_tree(path: Path) -> None:
    """``rmtree`` that also works on the read-only trees made by ``prepare``."""
    if path.exists():
        shutil.rmtree(path, onerror=writable_retry)


#: The machine's shared scratch folders, where an app's processes may leave files.
SHARED_SCRATCH = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))


def remove_owned(uid: int, folders: tuple[Path, ...] = SHARED_SCRATCH) -> list[str]:
    """Remove what ``uid`` owns at the top of ``folders``; returns the paths removed.

    Only for a uid of one app alone (never reused, see ``controller.app_uids``): whatever it
    owns there is that app's. Links are removed, never followed; what cannot be removed is
    logged and left, so the destroy still finishes.
    """
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:  # an immutable file, say: the rest of the destroy goes on
                log.warning("could not remove %s of a destroyed app: %s", entry.path, exc)
                continue
            removed.append(entry.path)
    return removed


def writable_retry(func: Callable[[str], object], failed: str, exc_info: object) -> None:
    """rmtree's error handler: make the folders writable and try again, never through a link.

    The trees belong to the app's user, who may have put a link where a folder was; a
    chmod by path would follow it (to a file anywhere), so folders are opened with
    ``O_NOFOLLOW`` and changed through the descriptor, and a path through a link is not
    retried at all.
    """
    parent = os.path.dirname(failed)
    if os.path.realpath(parent) != os.path.abspath(parent):
        raise OSError(f"not removing {failed}: its folder is reached through a link")
    _make_writable(parent)
    _make_writable(failed)
    func(failed)


def _make_writable(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # a link, a file or gone: nothing to make writable
    try:
        os.fchmod(fd, 0o755)
    finally:
        os.close(fd)


def app_releases(data_dir: Path, app: str, user: AppUser) -> Path:
    """``releases/<app>/``: entered only by the app's own uid (its group) and Moorage.

    ``releases/`` itself is ``0711`` (no app can list which apps exist) and each app's
    folder is root's with the app's group and ``0750`` (``0700`` when we are not root):
    another app's processes can neither list nor read a release, and the app itself can
    read its files but not change them. Applied on every deploy, so folders made before
    (``0755``) are closed too.
    """
    top = data_dir / "releases"
    top.mkdir(parents=True, exist_ok=True)
    top.chmod(0o711)
    folder = top / app
    folder.mkdir(exist_ok=True)
    _give_group(folder, user)
    folder.chmod(0o750 if user.drop else 0o700)
    ensure_reachable(folder, user)
    return folder


def _give_group(path: str | Path, user: AppUser) -> None:
    if user.drop:
        os.lchown(path, -1, user.gid)


def _make_read_only(root: Path, user: AppUser) -> None:
    """Readable by the app's group only, writable by nobody but Moorage.

    As root the tree is root's with the app's group (``0550``/``0440``); not as root, ours
    (``0500``/``0400``). Nothing is left for others, so even a file reached some other way
    than through ``releases/<app>/`` is not readable by another app.
    """
    read, execute = (0o440, 0o550) if user.drop else (0o400, 0o500)
    for folder, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            _give_group(path, user)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            executable = mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            os.chmod(path, execute if executable else read)
        for name in dirs:
            path = os.path.join(folder, name)
            _give_group(path, user)
            if not os.path.islink(path):
                os.chmod(path, execute)
    _give_group(root, user)
    os.chmod(root, execute)


def app_tmp(data_dir: Path, app: str, user: AppUser) -> Path:
    """A writable scratch folder per app (``TMPDIR``), the app user's alone (``0700``)."""
    path = data_dir / "tmp" / app
    path.mkdir(parents=True, exist_ok=True)
    (data_dir / "tmp").chmod(0o711)
    if user.drop:
        os.chown(path, user.uid, user.gid)
    path.chmod(0o700)
    return path


def process_env(
    release: ReleaseSpec,
    release_dir: Path,
    tmp: Path,
    dyno: str,
    port: int | None,
    bindings: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one process: platform defaults, then config vars, then the
    binding vars (``SERVICE_BINDING_ROOT`` and file paths, see ``binding_files``), then PORT/DYNO."""
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": str(release_dir),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({str(k): str(v) for k, v in release.env.items()})
    env.update(bindings or {})
    env["DYNO"] = dyno
    env.setdefault("MOORAGE_APP", release.app)
    env.setdefault("MOORAGE_RELEASE", f"v{release.version}")
    if release.source_version:
        env.setdefault("SOURCE_VERSION", release.source_version)
    if port is not None:
        env["PORT"] = str(port)
    return env


def command_argv(settings: PlatformSettings, command: str) -> list[str]:
    """``prlimit … -- /bin/bash -c '<source .profile.d>; <command>'``."""
    if not command.strip():
        raise InvalidParametersError("the command is empty")
    return [*limit_argv(settings), "/bin/bash", "-c", _PROFILE + command]
