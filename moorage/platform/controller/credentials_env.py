"""How a binding's credentials become an app's config vars, and the VCAP_SERVICES document.

Why its own module: the names are the contract with the app (``DATABASE_URL`` is what
every framework reads), so the rule is written down once. A Moorage broker publishes it
per offering as the OSB vendor extension ``metadata.moorage.credentials_env``
(``{"prefix": "DATABASE", "url": "uri", "parts": {"USER": "username", ...}}``); for a
third-party broker the prefix comes from the offering's name or tags (postgres/mysql →
``DATABASE``, redis → ``REDIS``, otherwise the upper-cased name) and the URL from the
credentials' ``uri`` or ``url``. An alias (``--as ANALYTICS``) replaces the prefix, so a
second binding of the same kind gets its own set of names.

Two more kinds of names (issue 15): ``files`` are prefixed vars whose value is the path of
one of the binding's files (``{"CREDENTIALS_FILE": "credentials"}`` →
``BIGQUERY_CREDENTIALS_FILE=$SERVICE_BINDING_ROOT/bigquery/credentials``, which the runtime
turns into the real path, see ``binding_files``), and ``unprefixed`` are the well-known
names a client library reads by itself (``GOOGLE_APPLICATION_CREDENTIALS``,
``GOOGLE_CLOUD_PROJECT``), each a copy of one prefixed var. Only the binding under the
offering's own prefix sets them: an app has one ``GOOGLE_APPLICATION_CREDENTIALS``, so a
second binding bound ``--as ANALYTICS`` gets ``ANALYTICS_CREDENTIALS_FILE`` and
``ANALYTICS_PROJECT`` only, and neither binding's names collide.

A published rule comes from a broker, and a broker may be hostile or broken: a rule is
used only when every name it yields is an upper-case identifier that the platform,
the language runtimes and the loader do not own (``LD_PRELOAD``, ``PATH``, ``PYTHON…``,
``MOORAGE_…``, see :func:`reserved_reason`). ``VCAP_SERVICES``/``VCAP_APPLICATION`` come
only from Moorage's own broker, and ``DATABASE_URL`` only from it or where the default
rule would give that name anyway (a PostgreSQL or MySQL offering). Otherwise the
default rule is used and a warning names the broker and the offering.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moorage.errors import InvalidParametersError

log = logging.getLogger(__name__)

VCAP_SERVICES = "VCAP_SERVICES"
ALIAS_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,40}$")
VAR_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_KNOWN_PREFIXES = (("postgres", "DATABASE"), ("mysql", "DATABASE"), ("redis", "REDIS"))
#: Names the platform, the shell, the builder or a runtime acts on: no broker rule may set them.
RESERVED_NAMES = frozenset(
    {
        "PATH", "HOME", "PORT", "DYNO", "SHELL", "USER", "LANG", "TZ", "PWD", "TMPDIR",
        "ENV", "BASH_ENV", "CDPATH", "IFS", "PS4", "PROMPT_COMMAND",
        "BUILDPACK_URL", "STACK", "SOURCE_VERSION",
        "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "RUBYOPT", "RUBYLIB", "PERL5OPT", "PERL5LIB",
        "PERLLIB", "GCONV_PATH", "LOCALDOMAIN", "HOSTALIASES", "RES_OPTIONS",
        "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "SERVICE_BINDING_ROOT",
    }
)  # fmt: skip
#: Prefixes of the dynamic loader, language runtimes, package managers (whose index or
#: config variables would let a broker choose the code a build installs) and the platform.
RESERVED_PREFIXES = (
    "LD_", "PYTHON", "PIP_", "UV_", "POETRY_", "PIPENV_", "CONDA_", "VIRTUAL_ENV",
    "NODE_", "NPM_", "YARN_", "PNPM_", "COREPACK_", "BUNDLE_", "GEM_", "RUBY", "PERL",
    "JAVA_", "GIT_", "SSL_", "MOORAGE_", "HEROKU_",
    "GUNICORN_", "UVICORN_", "HYPERCORN_", "GLIBC_", "OPENSSL_", "MALLOC_",
)  # fmt: skip
#: Suffixes of proxy and certificate-bundle variables that every HTTP client honours.
RESERVED_SUFFIXES = ("_PROXY", "_CA_BUNDLE", "_CA_CERTS", "_CAFILE")
#: Names only Moorage's own broker (or the default rule) may publish.
OWN_NAMES = frozenset({"VCAP_SERVICES", "VCAP_APPLICATION", "DATABASE_URL"})


#: ``$SERVICE_BINDING_ROOT/<binding>/<file>``: a var's value that names a binding file.
BINDING_ROOT_REF = "$SERVICE_BINDING_ROOT"
#: Binding and file names a runtime may project (servicebinding.io allows ``[-._a-zA-Z0-9]+``;
#: a leading dot would make ``.`` and ``..``).
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][-._A-Za-z0-9]*$")


@dataclass(frozen=True)
class EnvRule:
    prefix: str
    url: tuple[str, ...]
    parts: Mapping[str, str]
    #: Part → credential key: ``<prefix>_<part>`` is the path of that key's binding file.
    files: Mapping[str, str] = field(default_factory=dict)
    #: Well-known name → the part (``URL``, a ``parts`` or ``files`` name) it copies; set
    #: only under the rule's own prefix.
    unprefixed: Mapping[str, str] = field(default_factory=dict)


def binding_name(prefix: str) -> str:
    """The binding's name in VCAP_SERVICES and its folder under SERVICE_BINDING_ROOT."""
    return prefix.lower()


def file_reference(prefix: str, key: str) -> str:
    return f"{BINDING_ROOT_REF}/{binding_name(prefix)}/{key}"


def rule_for(offering: Mapping[str, Any], broker: str | None = None, *, own: bool = False) -> EnvRule:
    """The offering's published rule if its names are safe, else the default rule.

    ``broker`` names the broker in the warning about a refused rule; ``own`` is true for
    Moorage's built-in broker, whose rules may also set the names in :data:`OWN_NAMES`.
    """
    fallback = EnvRule(prefix=default_prefix(offering), url=("uri", "url"), parts={})
    published = ((offering.get("metadata") or {}).get("moorage") or {}).get("credentials_env")
    if not (isinstance(published, Mapping) and isinstance(published.get("prefix"), str)):
        return fallback
    url = published.get("url")
    rule = EnvRule(
        prefix=published["prefix"],
        url=(url,) if isinstance(url, str) else ("uri", "url"),
        parts=_mapping(published, "parts"),
        files=_mapping(published, "files"),
        unprefixed=_mapping(published, "unprefixed"),
    )
    allowed = set(var_names(fallback, fallback.prefix)) if not own else set(OWN_NAMES)
    for name in var_names(rule, rule.prefix):
        reason = reserved_reason(name) or _unknown_source(rule, name)
        if reason is None and name in OWN_NAMES and name not in allowed:
            reason = "only Moorage's own broker may set it"
        if reason is not None:
            _warn_refused(
                broker or "(unnamed)", str(offering.get("name", "?")), name, reason, fallback.prefix
            )
            return fallback
    return rule


def _mapping(published: Mapping[str, Any], key: str) -> dict[str, str]:
    value = published.get(key)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _unknown_source(rule: EnvRule, name: str) -> str | None:
    """Why an ``unprefixed`` or ``files`` entry of a published rule cannot be used, if it cannot."""
    if name in rule.unprefixed:
        part = rule.unprefixed[name]
        if part != "URL" and part not in rule.parts and part not in rule.files:
            return f"it copies {part}, which the rule does not define"
    for part, key in rule.files.items():
        if name == f"{rule.prefix}_{part}" and not FILE_NAME_RE.match(key):
            return f"{key!r} cannot be a file name"
    return None


def reserved_reason(name: str) -> str | None:
    """Why ``name`` may not come from a broker's rule, or None when it may."""
    if not VAR_NAME_RE.match(name):
        return "it is not an upper-case name of letters, digits and underscores"
    if name in RESERVED_NAMES:
        return "the platform, the shell or a runtime acts on it"
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"names starting with {prefix} belong to the platform, a runtime or a package manager"
    for suffix in RESERVED_SUFFIXES:
        if name.endswith(suffix):
            return f"names ending in {suffix} steer every HTTP client of the app"
    return None


@functools.lru_cache(maxsize=256)
def _warn_refused(broker: str, offering: str, name: str, reason: str, prefix: str) -> None:
    """Once per broker, offering and refused name (the marketplace asks on every listing)."""
    log.warning(
        "broker %s publishes config var %r for the offering %s, which is refused (%s); "
        "using the default names %s_URL instead",
        broker,
        name,
        offering,
        reason,
        prefix,
        extra={"broker": broker, "offering": offering},
    )


def default_prefix(offering: Mapping[str, Any]) -> str:
    words = [str(offering.get("name", ""))] + [str(t) for t in offering.get("tags") or []]
    for needle, prefix in _KNOWN_PREFIXES:
        if any(needle in word.lower() for word in words):
            return prefix
    name = re.sub(r"[^A-Z0-9]+", "_", str(offering.get("name", "SERVICE")).upper()).strip("_")
    if not name or name[0].isdigit() or reserved_reason(f"{name}_URL"):
        return f"SERVICE_{name}".rstrip("_")
    return name


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
    names = [f"{prefix}_URL", *(f"{prefix}_{part}" for part in [*rule.parts, *rule.files])]
    if prefix == rule.prefix:
        names.extend(rule.unprefixed)
    return sorted(set(names))


def vars_for(rule: EnvRule, prefix: str, credentials: Mapping[str, Any]) -> dict[str, str]:
    """The config vars of one binding (file vars as ``$SERVICE_BINDING_ROOT/…`` references)."""
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
    for part, key in rule.files.items():
        if credentials.get(key) is not None and FILE_NAME_RE.match(key):
            out[f"{prefix}_{part}"] = file_reference(prefix, key)
    if prefix == rule.prefix:
        for name, part in rule.unprefixed.items():
            if f"{prefix}_{part}" in out:
                out[name] = out[f"{prefix}_{part}"]
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
    #: The broker that provides it (Cloud Foundry's ``provider`` field; the binding's
    #: ``provider`` file).
    provider: str | None = None


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
                "provider": b.provider,
                "credentials": dict(b.credentials),
            }
        )
    return json.dumps(doc, sort_keys=True) if doc else None
