"""Formations as both runtimes check them: process types, counts and how they are described.

Why one module: ``scale web=3`` must be refused with the same words on one machine and on
Kubernetes, so the rules (a Procfile type, a whole count from 0 to ``MAX_PER_TYPE``) are
written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.errors import InvalidParametersError
from moorage.platform import procfile
from moorage.platform.runtime.base import ReleaseSpec

#: The most processes of one type an app may ask for.
MAX_PER_TYPE = 100


def check_count(ptype: str, count: Any) -> None:
    """Refuse a process type that is not a valid name, or a count that is not 0 to ``MAX_PER_TYPE``."""
    if not procfile.is_process_type(ptype):
        raise InvalidParametersError(f"process type {ptype!r} is not valid ({procfile.RULE})")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_PER_TYPE:
        raise InvalidParametersError(
            f"count {count!r} for {ptype} must be a whole number from 0 to {MAX_PER_TYPE}"
        )


def check_formation(
    release: ReleaseSpec, formation: Mapping[str, int], base: Mapping[str, int] | None = None
) -> dict[str, int]:
    """``base`` changed by ``formation``, without zero counts; each type must be in the Procfile."""
    counts = dict(base or {})
    for ptype, count in formation.items():
        check_count(ptype, count)
        if count > 0 and ptype not in release.processes:
            raise InvalidParametersError(
                f"process type {ptype!r} is not in the Procfile of {release.app} "
                f"(types: {', '.join(sorted(release.processes)) or 'none'})"
            )
        counts[ptype] = count
    return {t: c for t, c in counts.items() if c > 0}


def describe(counts: Mapping[str, int]) -> str:
    """``web=2, worker=1`` (sorted), or ``no processes``."""
    return ", ".join(f"{t}={c}" for t, c in sorted(counts.items())) or "no processes"
