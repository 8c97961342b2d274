"""The uid each app's builds and processes run as: handed out at creation, freed at destroy.

Why the controller and the state database: the uid belongs to the app's row, so it goes
with the app (not with its name) and is gone when the app is. Every uid ever handed out
is recorded in ``platform_app_uids``; a new app gets the next uid above all of them
(from :data:`FIRST_UID`, skipping uids ``/etc/passwd`` knows). Monotonic rather than
"lowest free": an app's processes may have left files outside the folders a destroy
removes (``/tmp``, ``/dev/shm``, a volume), still owned by its uid, and a uid handed out
again would make them another app's. 2^31 uids leave room for that.

The runtime and the builder only receive the uid (``ReleaseSpec.uid``, the build step's
``uid``); when Moorage is not root they ignore it and children run as the current user.
"""

from __future__ import annotations

import json
import logging
import pwd
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from moorage.platform.controller.context import Platform
from moorage.store.apps import App, AppUid
from moorage.store.base import utcnow

log = logging.getLogger(__name__)

#: Below this, uids belong to the machine's accounts (Debian gives people 1000–59999,
#: but accounts made by hand are rare above 40000; /etc/passwd is checked anyway).
FIRST_UID = 40000
#: The advisory lock that orders uid allocation on PostgreSQL ("uid" in ASCII).
_LOCK_KEY = 0x756964


def allocate(session: Session, app: str) -> int:
    """Record and return a uid for ``app`` that was never handed out and no account has.

    Controllers creating apps at once take turns: on PostgreSQL behind an advisory lock
    held until their transaction ends; SQLite runs one writing transaction at a time
    anyway. The ledger's primary key stays the last word.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    high = session.scalar(select(func.max(AppUid.uid)))
    uid = max(FIRST_UID, (high or 0) + 1)
    while _known_to_passwd(uid):
        uid += 1
    session.add(AppUid(uid=uid, app=app))
    session.flush()
    return uid


def free(session: Session, app: App) -> None:
    """Mark the uid of ``app`` (about to be deleted) freed: recorded, never handed out again."""
    if app.uid is None:
        return
    row = session.get(AppUid, app.uid)
    if row is not None:
        row.freed_at = utcnow()


def adopt(platform: Platform) -> None:
    """Give every app made before uids were on its row one, keeping the uid it had.

    Until then uids were kept in ``<data_dir>/run/app-uids.json`` (name → uid): its
    entries are recorded (as freed when no such app exists any more, so they are not
    handed out again) and the file is renamed ``app-uids.json.imported``.
    """
    legacy = platform.settings.data_dir / "run" / "app-uids.json"
    table = _read_legacy(legacy)
    with platform.db.unit_of_work() as s:
        apps = {a.name: a for a in s.scalars(select(App))}
        if not table and all(a.uid is not None for a in apps.values()):
            return
        known = set(s.scalars(select(AppUid.uid)))
        for name, uid in sorted(table.items(), key=lambda item: item[1]):
            if uid in known:
                continue
            holder = apps.get(name)
            takes_it = holder is not None and holder.uid is None
            s.add(AppUid(uid=uid, app=name, freed_at=None if takes_it else utcnow()))
            s.flush()
            known.add(uid)
            if takes_it:
                assert holder is not None
                holder.uid = uid
        for app in apps.values():
            if app.uid is None:
                app.uid = allocate(s, app.name)
    if table:
        legacy.rename(legacy.with_name(legacy.name + ".imported"))
        legacy.with_suffix(".lock").unlink(missing_ok=True)
        log.info("imported %d app uids from %s", len(table), legacy)


def _read_legacy(path: Path) -> dict[str, int]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {str(name): int(uid) for name, uid in raw.items()}


def _known_to_passwd(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
