"""Custom domains: validated host names, unique across the whole platform.

Why the checks: a domain routes traffic to an app, so one app must not claim another
app's name under the base domain, nor a name another app already has; both would let
one user capture another's requests.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select

from moorage.errors import ConflictError, InvalidParametersError, NotFoundError
from moorage.platform.controller import certs
from moorage.platform.controller.apps import find
from moorage.platform.controller.context import Platform, Principal
from moorage.store.apps import Domain

LABEL_RE = re.compile(r"^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$")


def validate(platform: Platform, raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise InvalidParametersError('give a domain: {"domain": "www.example.com"}')
    domain = raw.strip().lower().rstrip(".")
    base = platform.settings.platform.base_domain.lower()
    if domain == base or domain.endswith("." + base):
        raise InvalidParametersError(
            f"{domain} is under the platform's base domain {base}; every app already answers at <app>.{base}"
        )
    labels = domain.split(".")
    if (
        len(domain) > 253
        or len(labels) < 2
        or not all(LABEL_RE.match(label) for label in labels)
        or "*" in labels[1:]
        or labels[-1].isdigit()
        or labels[-1] in ("invalid", "localhost")
    ):
        raise InvalidParametersError(
            f"invalid domain {raw!r}: use a host name like www.example.com (a wildcard only as the first label)"
        )
    if labels[0] == "*":
        covered = domain[2:]
        if len(labels) < 3:
            raise InvalidParametersError(
                f"{domain} would take every name under a top-level domain; use a wildcard like *.example.com"
            )
        if base == covered or base.endswith("." + covered):
            raise InvalidParametersError(
                f"{domain} would cover the platform's base domain {base} and capture other apps' names"
            )
    return domain


def list_domains(platform: Platform, who: Principal, name: str) -> list[str]:
    with platform.db.unit_of_work() as s:
        app = find(s, who, name)
        return [
            d.domain for d in s.scalars(select(Domain).where(Domain.app_id == app.id).order_by(Domain.id))
        ]


def add(platform: Platform, who: Principal, name: str, raw: Any) -> str:
    domain = validate(platform, raw)
    with platform.app_lock(name, who, f"domains:add {domain}"):
        with platform.db.unit_of_work() as s:
            app = find(s, who, name)
            if s.scalar(select(Domain.id).where(Domain.domain == domain)) is not None:
                raise ConflictError(f"the domain {domain} is already in use by an app")
            s.add(Domain(app_id=app.id, domain=domain))
        try:
            _publish(platform, who, name)
        except Exception:  # the router refused it: forget it, so state and routes agree
            with platform.db.unit_of_work() as s:
                s.execute(delete(Domain).where(Domain.domain == domain))
            raise
    return domain


def remove(platform: Platform, who: Principal, name: str, raw: str) -> None:
    domain = raw.strip().lower().rstrip(".")
    with platform.app_lock(name, who, f"domains:remove {domain}"):
        with platform.db.unit_of_work() as s:
            app = find(s, who, name)
            row = s.scalar(select(Domain).where(Domain.app_id == app.id, Domain.domain == domain))
            if row is None:
                raise NotFoundError(f"{name} has no domain {domain}; see `moorage domains`")
            s.delete(row)
        _publish(platform, who, name)


def _publish(platform: Platform, who: Principal, name: str) -> None:
    platform.runtime.set_domains(name, list_domains(platform, who, name))
    certs.publish(platform, name)  # a wildcard certificate may cover the new domain
