"""App identity: valid app names, who app processes run as, and their resource limits.

Why a leaf module of the platform: the controller (names), the local runtime (app
processes, one-off commands), the builder (builds as the app's uid), the router (nginx
workers) and git (repository paths) all need the same answers, and none of them may import
another's package for it. A release directory is only
usable if the unprivileged user can reach it. Checking that up front turns an obscure
``chdir`` failure inside a forked child into an error that says which folder to fix.

When Moorage runs as root, each app's processes run under a uid and gid of their own
(allocated by the controller when the app is created and kept on its row in the state
database; it comes in ``ReleaseSpec.uid``), with no supplementary groups: one app cannot read another's ``/proc/<pid>/environ`` (its config
and credentials), signal its processes or use up its process limit. ``run_as_user``
(default ``nobody``) is the fallback identity for what belongs to no app. When Moorage does
not run as root, children run as the current user. In both cases the limits below apply
to the child and what it starts.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from moorage.errors import ConfigurationError, InvalidParametersError
from moorage.settings import PlatformSettings

PRLIMIT = "/usr/bin/prlimit"


@dataclass(frozen=True)
class AppUser:
    """The identity children run as; ``drop`` is False when Moorage is not root."""

    name: str
    uid: int
    gid: int
    group: str
    drop: bool

    def popen_kwargs(self) -> dict[str, object]:
        """``subprocess.Popen`` arguments that switch to this user (empty when not root)."""
        if not self.drop:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def app_identity(fallback: AppUser, app: str, uid: int | None) -> AppUser:
    """Who the processes of ``app`` run as: its own ``uid`` (and gid) when we are root.

    ``fallback`` is :func:`app_user`'s answer: ourselves when not root (then every app
    runs as we do), else ``run_as_user``, which is also used for a release without a uid
    (one made by hand, not by the controller).
    """
    if not fallback.drop or uid is None:
        return fallback
    if uid <= 0:
        raise ConfigurationError(f"app {app} has uid {uid}; apps must run as an unprivileged user")
    return AppUser(f"app-{app}", uid, uid, str(uid), drop=True)


def app_user(settings: PlatformSettings) -> AppUser:
    """The user app processes run as, looked up once."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return AppUser(entry.pw_name, entry.pw_uid, entry.pw_gid, _group_name(entry.pw_gid), drop=False)
    try:
        entry = pwd.getpwnam(settings.run_as_user)
    except KeyError:
        raise ConfigurationError(
            f"run_as_user {settings.run_as_user!r} does not exist; create it "
            "(useradd --system moorage-app) or set MOORAGE_PLATFORM_RUN_AS_USER"
        ) from None
    if entry.pw_uid == 0:
        raise ConfigurationError(
            f"run_as_user {settings.run_as_user!r} is root; apps must run as an unprivileged user"
        )
    return AppUser(entry.pw_name, entry.pw_uid, entry.pw_gid, _group_name(entry.pw_gid), drop=True)


def limit_argv(settings: PlatformSettings) -> list[str]:
    """A ``prlimit`` prefix that lowers memory, open-file and process limits, then execs.

    ``prlimit`` (util-linux) instead of a ``preexec_fn``: the runtime forks from a
    process full of threads, where running Python code between fork and exec is unsafe.
    The process limit counts every process of the app user, as the kernel does.
    """
    memory = settings.process_memory_mb * 1024 * 1024
    # RLIMIT_DATA, not RLIMIT_AS: it counts the private writable memory a process really
    # uses, while Node.js (V8), the JVM and Go reserve gigabytes of address space up front
    # and would not even start under an address-space limit of a few hundred MB.
    return [
        PRLIMIT,
        f"--data={memory}:{memory}",
        f"--nofile={settings.process_open_files}:{settings.process_open_files}",
        f"--nproc={settings.process_max_procs}:{settings.process_max_procs}",
        "--",
    ]


def ensure_reachable(path: Path, user: AppUser) -> None:
    """Raise ``ConfigurationError`` unless ``user`` can enter every folder up to ``path``."""
    if not user.drop:
        return
    for folder in [path, *path.parents]:
        try:
            info = folder.stat()
        except FileNotFoundError:
            continue
        if not _can_enter(info, user):
            raise ConfigurationError(
                f"the app user {user.name!r} cannot enter {folder}, so it cannot reach {path}; "
                "put the data dir (MOORAGE_DATA_DIR) in a folder others may enter, e.g. /var/lib/moorage"
            )


def _can_enter(info: os.stat_result, user: AppUser) -> bool:
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == user.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


NAME_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
RESERVED = {"moorage", "controller", "router", "broker", "www", "api", "admin", "localhost"}


def validate_name(name: object) -> str:
    """An app name is a DNS label (it becomes ``<name>.<base domain>``) and not reserved."""
    if not isinstance(name, str) or len(name) > 63 or not NAME_RE.match(name):
        raise InvalidParametersError(
            f"invalid app name {name!r}: use at most 63 lower-case letters, digits and dashes, "
            "starting with a letter and not ending with a dash (a DNS label)"
        )
    if name in RESERVED:
        raise InvalidParametersError(f"the app name {name!r} is reserved; choose another")
    return name
