"""What every controller function needs: settings, the state database, the runtime.

Why one object: the API factory builds a :class:`Platform` once and hands it to every
view; tests build one per test with their own data dir. It also owns the per-app locks
that serialize deploys, config changes and rollbacks of one app, so two of them never
race for the same release version or leave the runtime half way between two releases.
The locks live with the state (moorage.store.locks), so they hold across controller
replicas; the rule for waiting or refusing is in docs/architecture.md (*Per-app locks*).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from moorage.errors import ConflictError
from moorage.platform.runtime.base import Runtime
from moorage.platform.slug_store import private_dir
from moorage.settings import Settings
from moorage.store.apps import App, Perm
from moorage.store.db import Database
from moorage.store.encryptor import Encryptor
from moorage.store.locks import Holder, LockBusy, NamedLocks, locks_for

#: Lock names of service instances start with this; the rest name apps.
SERVICE_LOCK = "service/"


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request (a plain value, no database session)."""

    id: int
    username: str
    is_admin: bool


@dataclass
class Platform:
    settings: Settings
    db: Database
    runtime: Runtime
    encryptor: Encryptor
    #: ``build(app, source_dir, env, progress) -> (artifact_dir, process_types)``.
    builder: Any = None
    _locks: NamedLocks = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._locks = locks_for(self.db.engine, self.settings.data_dir)

    @contextlib.contextmanager
    def app_lock(
        self,
        name: str,
        who: Principal | None = None,
        what: str = "a change",
        *,
        long: bool = False,
        wait: float | None = None,
    ) -> Iterator[None]:
        """Hold the lock of app (or ``service/<name>``) ``name``, in every controller process.

        ``long`` operations (builds) are refused at once when the app is busy, and make
        others refuse at once rather than wait behind them; other changes wait up to
        ``wait`` seconds (default: the ``app_lock_wait_seconds`` setting). A refusal is a
        ConflictError saying who holds the lock, since when, and for what.
        """
        holder = Holder(
            user=who.username if who else "moorage", what=what, since=dt.datetime.now(dt.UTC), long=long
        )
        limit = 0.0 if long else self.settings.platform.app_lock_wait_seconds if wait is None else wait
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self._locks.hold(name, holder, limit))
            except LockBusy as busy:
                raise ConflictError(self._busy_message(busy, who), lock=name) from None
            yield

    def _busy_message(self, busy: LockBusy, who: Principal | None) -> str:
        service = busy.name.startswith(SERVICE_LOCK)
        subject = f"service {busy.name.removeprefix(SERVICE_LOCK)}" if service else busy.name
        h = busy.holder
        if h is None or not self._may_see(who, busy.name, h):
            return f"another change of {subject} is in progress; try again when it finishes"
        kind = "an operation" if service else "a deploy" if h.long else "a change"
        return (
            f"{kind} of {subject} is in progress (started by {h.user} at "
            f"{h.since:%Y-%m-%d %H:%M:%S} UTC, {h.what}); try again when it finishes"
        )

    def _may_see(self, who: Principal | None, name: str, holder: Holder) -> bool:
        """Whether ``who`` may learn who is changing ``name`` (its owner and collaborators)."""
        if who is None or who.is_admin or holder.user == who.username:
            return True
        if name.startswith(SERVICE_LOCK):  # service names are per owner: maybe not theirs
            return False
        with self.db.sessions() as s:
            app = s.scalar(select(App).where(App.name == name))
            if app is None:
                return False
            if app.owner_id == who.id:
                return True
            return s.scalar(select(Perm.id).where(Perm.app_id == app.id, Perm.user_id == who.id)) is not None

    @property
    def slugs_dir(self) -> Path:
        """``<data_dir>/slugs``: uploads, source trees and slugs of every app; Moorage's alone."""
        return private_dir(self.settings.data_dir / "slugs")
