"""The unprivileged system user that runs the embedded servers when Moorage runs as root.

Why: PostgreSQL refuses to run as root, and no server Moorage starts for users' data
should have root's rights anyway. When the effective uid is 0 we create (once, with
``useradd --system``) and use a system account; otherwise the servers run as whoever runs
Moorage. The data dir must be reachable by that account: we check each parent folder and
say which one blocks it, rather than letting initdb fail with "permission denied".
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from moorage.errors import ConfigurationError

DEFAULT_SERVICE_USER = "moorage"


@dataclass(frozen=True)
class ServiceUser:
    """Who a server process runs as; ``None`` ids mean "the current user"."""

    name: str
    uid: int | None = None
    gid: int | None = None

    @property
    def drops_root(self) -> bool:
        return self.uid is not None

    def popen_kwargs(self) -> dict[str, object]:
        """Arguments for :class:`subprocess.Popen` that start the child as this user."""
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        """Give ``path`` (not recursively, never a link's target) to this user; a no-op unless root."""
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def chown_tree(self, path: Path) -> None:
        if self.uid is None:
            return
        self.chown(path)
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), self.uid, self.gid or 0)


def service_user(name: str = DEFAULT_SERVICE_USER) -> ServiceUser:
    """The account servers run as: ``name`` (created if missing) when root, else ourselves."""
    if os.geteuid() != 0:
        return ServiceUser(name=pwd.getpwuid(os.geteuid()).pw_name)
    entry = _ensure_system_user(name)
    return ServiceUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def check_reachable(path: Path, user: ServiceUser) -> None:
    """Raise ConfigurationError when ``user`` cannot traverse every parent of ``path``."""
    if not user.drops_root:
        return
    for parent in reversed(path.absolute().parents):
        try:
            st = parent.stat()
        except FileNotFoundError:
            return  # the rest is created by Moorage, reachable
        if st.st_uid == user.uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == user.gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise ConfigurationError(
                f"the folder {parent} cannot be entered by the user {user.name!r} that runs the embedded "
                f"servers, so {path} is out of its reach; choose a data dir elsewhere (for example "
                f"/var/lib/moorage) or allow it with: chmod o+x {parent}"
            )


def _ensure_system_user(name: str, deadline_seconds: float = 30.0) -> pwd.struct_passwd:
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        # Several processes may race here (tests under xdist); useradd then fails with
        # "already exists" (9) or "cannot lock" (10) and we look again.
        proc = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "Moorage embedded services",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode in (0, 9):
            continue
        if proc.returncode != 10 or time.monotonic() > deadline:
            raise ConfigurationError(
                f"could not create the system user {name!r} that runs the embedded servers "
                f"(useradd exit {proc.returncode}: {proc.stderr.strip()}); create it yourself with "
                f"useradd --system {name}"
            )
        time.sleep(0.05)
