"""A release's service bindings as files: the servicebinding.io workload projection.

Why: many libraries read credentials from files rather than variables (Spring Cloud
Bindings, Quarkus, google-auth's ``GOOGLE_APPLICATION_CREDENTIALS`` key file), and the
Service Binding specification that Kubernetes and Cloud Foundry's Korifi follow says where
they are: ``$SERVICE_BINDING_ROOT/<binding name>/<key>``, one file per credential, plus
``type`` (the offering, e.g. ``postgresql``) and ``provider`` (the broker).

Why from ``VCAP_SERVICES``: it is the release's own record of every binding it carries
(label, binding name, credentials), built by ``bindings`` and kept by the release rules
of ``service_vars`` and ``releases`` — a rotation makes a release with the new
credentials, an unbind one without them, and a rollback keeps the credentials of the
bindings standing now and never brings back revoked ones. So the files are derived from
the release's config here, not from the bindings table, and always agree with its env.

Values: a string as it is, a number as its digits, anything else (objects, lists,
booleans) as JSON. Keys that cannot be file names are left out (they stay in
``VCAP_SERVICES``); ``type`` and ``provider`` are the platform's even when the
credentials have keys of those names. A config var whose value is exactly
``$SERVICE_BINDING_ROOT/<binding>/<file>`` of a projected file becomes a path the runtime
fills in (:attr:`ReleaseSpec.binding_paths`), because only the runtime knows the folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moorage.platform.controller.credentials_env import BINDING_ROOT_REF, FILE_NAME_RE, VCAP_SERVICES

log = logging.getLogger(__name__)

#: The two files the platform writes itself into every binding's folder.
TYPE, PROVIDER = "type", "provider"


@dataclass(frozen=True)
class Projection:
    """What a release's env becomes for the runtime."""

    env: dict[str, str]
    files: dict[str, dict[str, str]]
    paths: dict[str, str]


def project(env: Mapping[str, str]) -> Projection:
    """Split ``env`` into plain vars, the binding files and the vars naming one of them."""
    files = files_of(env.get(VCAP_SERVICES))
    plain: dict[str, str] = {}
    paths: dict[str, str] = {}
    for name, value in env.items():
        relative = _relative(value)
        if relative is not None and _exists(files, relative):
            paths[name] = relative
        else:
            plain[name] = value
    return Projection(plain, files, paths)


def files_of(vcap: str | None) -> dict[str, dict[str, str]]:
    """Binding name → file name → content, from a ``VCAP_SERVICES`` document."""
    if not vcap:
        return {}
    try:
        doc = json.loads(vcap)
    except ValueError:
        log.warning("VCAP_SERVICES is not JSON; no binding files for this release")
        return {}
    out: dict[str, dict[str, str]] = {}
    entries = (
        [e for group in doc.values() if isinstance(group, list) for e in group]
        if isinstance(doc, dict)
        else []
    )
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("credentials"), dict):
            continue
        name = str(entry.get("binding_name") or entry.get("name") or "")
        if not FILE_NAME_RE.match(name) or name in out:
            continue
        folder = {key: _content(value) for key, value in entry["credentials"].items() if _fits(key, value)}
        folder[TYPE] = str(entry.get("label") or "")
        if entry.get("provider"):
            folder[PROVIDER] = str(entry["provider"])
        out[name] = folder
    return out


def _fits(key: Any, value: Any) -> bool:
    return isinstance(key, str) and bool(FILE_NAME_RE.match(key)) and value is not None


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _relative(value: str) -> str | None:
    """``bigquery/credentials`` for ``$SERVICE_BINDING_ROOT/bigquery/credentials``, else None."""
    head, sep, rest = value.partition("/")
    if head != BINDING_ROOT_REF or not sep:
        return None
    parts = rest.split("/")
    return rest if len(parts) == 2 and all(FILE_NAME_RE.match(p) for p in parts) else None


def _exists(files: Mapping[str, Mapping[str, str]], relative: str) -> bool:
    binding, _, key = relative.partition("/")
    return key in files.get(binding, {})
