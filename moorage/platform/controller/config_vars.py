"""Config vars: read the live release's, and change them as a new release.

Why a module of its own: the rules for keys and values (what a process environment can
hold) and the diff that names a config release are about config, not about the ledger;
``releases.record`` appends and deploys whatever config it is given.
"""

from __future__ import annotations

import re
from typing import Any

from moorage.errors import ConflictError, InvalidParametersError
from moorage.platform.controller.apps import find
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.controller.releases import config_of, current, record
from moorage.platform.controller.service_vars import refuse_service_vars
from moorage.platform.runtime.base import Progress

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_VALUE = 64 * 1024


def get_config(platform: Platform, who: Principal, name: str) -> dict[str, str]:
    with platform.db.unit_of_work() as s:
        app = find(s, who, name)
        return config_of(platform, s, current(s, app))


def change_config(
    platform: Platform, who: Principal, name: str, changes: Any, progress: Progress, force: bool = False
) -> dict[str, Any]:
    """Merge ``changes`` (``None`` unsets a key) into the config as a new release.

    Vars a bound service provides are refused unless ``force`` (see controller.service_vars).
    """
    check_changes(changes)
    with platform.app_lock(name, who, "config:set"):
        with platform.db.unit_of_work() as s:
            app = find(s, who, name)
            rel = current(s, app)
            old = config_of(platform, s, rel)
            build_id = rel.build_id
            if not force:
                refuse_service_vars(s, app.id, name, changes)
        new = dict(old)
        for key, value in changes.items():
            if value is None:
                new.pop(key, None)
            else:
                new[key] = value
        summary = f"{who.username} {_describe(name, old, new)}"
        release = record(
            platform, who, name, summary, build_id=build_id, config_values=new, progress=progress
        )
    return {"values": new, "release": release}


def check_changes(changes: Any) -> None:
    """Refuse, before anything is read or written, changes no process environment can hold."""
    if not isinstance(changes, dict) or not changes:
        raise InvalidParametersError(
            'give the variables to change: {"values": {"KEY": "value", "OLD": null}}'
        )
    for key, value in changes.items():
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise InvalidParametersError(
                f"invalid config key {key!r}: use letters, digits and underscores, not starting with a digit"
            )
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidParametersError(f"the value of {key} must be a string (or null to unset it)")
        if len(value) > MAX_VALUE:
            raise InvalidParametersError(f"the value of {key} is longer than {MAX_VALUE} characters")
        if "\x00" in value:
            raise InvalidParametersError(
                f"the value of {key} contains a NUL character, which no process environment can hold"
            )


def _describe(name: str, old: dict[str, str], new: dict[str, str]) -> str:
    """``added A, changed B, removed C``; ConflictError when nothing changed."""
    added = sorted(k for k in new if k not in old)
    changed = sorted(k for k in new if k in old and new[k] != old[k])
    removed = sorted(k for k in old if k not in new)
    if not (added or changed or removed):
        raise ConflictError(
            f"nothing changed: the config of {name} already has these values; no release made"
        )
    parts = [
        f"{verb} {', '.join(keys)}"
        for verb, keys in (("added", added), ("changed", changed), ("removed", removed))
        if keys
    ]
    return ", ".join(parts)
