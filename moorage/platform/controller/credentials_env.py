"""How a binding's credentials become an app's config vars, and the VCAP_SERVICES document.

Why its own module: the names are the contract with the app (``DATABASE_URL`` is what
every framework reads), so the rule is written down once. A Moorage broker publishes it
per offering as the OSB vendor extension ``metadata.moorage.credentials_env``
(``{"prefix": "DATABASE", "url": "uri", "parts": {"USER": "username", ...}}``); for a
third-party broker the prefix comes from the offering's name or tags (postgres/mysql →
``DATABASE``, redis → ``REDIS``, otherwise the upper-cased name) and the URL from the
credentials' ``uri`` or ``url``. An alias (``--as ANALYTICS``) replaces the prefix, so a
second binding of the same kind gets its own set of names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from moorage.errors import InvalidParametersError

VCAP_SERVICES = "VCAP_SERVICES"
ALIAS_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,40}$")
_KNOWN_PREFIXES = (("postgres", "DATABASE"), ("mysql", "DATABASE"), ("redis", "REDIS"))


@dataclass(frozen=True)
class EnvRule:
    prefix: str
    url: tuple[str, ...]
    parts: Mapping[str, str]


def rule_for(offering: Mapping[str, Any]) -> EnvRule:
    """The offering's published rule, or the default for a third-party offering."""
    published = ((offering.get("metadata") or {}).get("moorage") or {}).get("credentials_env")
    if isinstance(published, Mapping) and isinstance(published.get("prefix"), str):
        url = published.get("url")
        parts = published.get("parts") if isinstance(published.get("parts"), Mapping) else {}
        return EnvRule(
            prefix=published["prefix"],
            url=(url,) if isinstance(url, str) else ("uri", "url"),
            parts={str(k): str(v) for k, v in parts.items()},
        )
    return EnvRule(prefix=default_prefix(offering), url=("uri", "url"), parts={})


def default_prefix(offering: Mapping[str, Any]) -> str:
    words = [str(offering.get("name", ""))] + [str(t) for t in offering.get("tags") or []]
    for needle, prefix in _KNOWN_PREFIXES:
        if any(needle in word.lower() for word in words):
            return prefix
    name = re.sub(r"[^A-Z0-9]+", "_", str(offering.get("name", "SERVICE")).upper()).strip("_")
    return name if name and not name[0].isdigit() else f"SERVICE_{name}"


def normalize_alias(alias: str | None) -> str | None:
    """``--as analytics`` → ``ANALYTICS``; InvalidParametersError for anything else."""
    if alias is None or alias == "":
        return None
    if not isinstance(alias, str):
        raise InvalidParametersError("the alias (--as) must be a string such as ANALYTICS")
    upper = alias.upper().replace("-", "_")
    if not ALIAS_RE.match(upper):
        raise InvalidParametersError(
            f"invalid alias {alias!r}: use letters, digits and underscores, starting with a letter "
            "(it becomes the config var prefix, e.g. ANALYTICS → ANALYTICS_URL)"
        )
    return upper


def var_names(rule: EnvRule, prefix: str) -> list[str]:
    """The names a binding with this rule and prefix may set (whether or not credentials have them)."""
    return sorted([f"{prefix}_URL", *(f"{prefix}_{part}" for part in rule.parts)])


def vars_for(rule: EnvRule, prefix: str, credentials: Mapping[str, Any]) -> dict[str, str]:
    """The config vars of one binding."""
    out: dict[str, str] = {}
    for key in rule.url:
        value = credentials.get(key)
        if isinstance(value, str) and value:
            out[f"{prefix}_URL"] = value
            break
    for part, key in rule.parts.items():
        value = credentials.get(key)
        if value is not None and not isinstance(value, dict | list):
            out[f"{prefix}_{part}"] = str(value)
    return out


@dataclass(frozen=True)
class BoundService:
    """What VCAP_SERVICES says about one binding."""

    label: str
    name: str
    binding_name: str
    plan: str
    tags: tuple[str, ...]
    credentials: Mapping[str, Any]


def vcap_services(bound: Iterable[BoundService]) -> str | None:
    """``{label: [{name, instance_name, binding_name, label, plan, tags, credentials}]}``, or None."""
    doc: dict[str, list[dict[str, Any]]] = {}
    for b in sorted(bound, key=lambda b: (b.label, b.name, b.binding_name)):
        doc.setdefault(b.label, []).append(
            {
                "name": b.name,
                "instance_name": b.name,
                "binding_name": b.binding_name,
                "label": b.label,
                "plan": b.plan,
                "tags": list(b.tags),
                "credentials": dict(b.credentials),
            }
        )
    return json.dumps(doc, sort_keys=True) if doc else None
