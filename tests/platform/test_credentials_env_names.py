"""A broker's published config var names are checked before the platform uses them.

The rule travels in the broker's catalog (``metadata.moorage.credentials_env``); a
third-party broker could publish names that hijack the app's process (``LD_PRELOAD``,
``PYTHONPATH``) or the platform's own variables. Such a rule is replaced by the default
one derived from the offering's name, and a warning names the broker and the offering.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from moorage.platform.controller.credentials_env import rule_for, var_names, vars_for

LOGGER = "moorage.platform.controller.credentials_env"


def offering(name: str, prefix: Any, parts: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A catalog entry as a broker sends it, with a published rule."""
    rule: dict[str, Any] = {"prefix": prefix, "url": "uri"}
    if parts is not None:
        rule["parts"] = parts
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "plans": [],
        "metadata": {"moorage": {"credentials_env": rule}},
        **extra,
    }


def unique(name: str) -> str:
    """Offering names unique per test (each refused rule is warned about once)."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize(
    ("prefix", "parts", "refused"),
    [
        ("LD", {"PRELOAD": "x"}, "LD_PRELOAD"),
        ("PIP_EXTRA_INDEX", {}, "PIP_EXTRA_INDEX_URL"),  # the Python buildpack installs from it
        ("BASH", {"ENV": "e"}, "BASH_ENV"),
        ("HTTPS", {"PROXY": "p"}, "HTTPS_PROXY"),
        ("REQUESTS", {"CA_BUNDLE": "b"}, "REQUESTS_CA_BUNDLE"),
        ("JAVA_TOOL", {"OPTIONS": "o"}, "JAVA_TOOL_OPTIONS"),
        ("GIT", {"SSH_COMMAND": "c"}, "GIT_SSH_COMMAND"),
        ("GUNICORN", {"CMD_ARGS": "a"}, "GUNICORN_CMD_ARGS"),  # --env sets anything
        ("GLIBC", {"TUNABLES": "t"}, "GLIBC_TUNABLES"),
        ("FORWARDED", {"ALLOW_IPS": "i"}, "FORWARDED_ALLOW_IPS"),
        ("LD", {}, "LD_URL"),
        ("SAFE", {"path": "p"}, "SAFE_path"),
        ("cache", {}, "cache_URL"),
        ("PYTHON", {"PATH": "p"}, "PYTHON_PATH"),
        ("PYTHONPATH", {}, "PYTHONPATH_URL"),
        ("MOORAGE", {"PLATFORM_TOKEN": "t"}, "MOORAGE_PLATFORM_TOKEN"),
        ("HEROKU", {}, "HEROKU_URL"),
        ("NODE", {"OPTIONS": "o"}, "NODE_OPTIONS"),
        ("NPM", {"CONFIG_REGISTRY": "r"}, "NPM_CONFIG_REGISTRY"),
        ("BUNDLE", {"GEMFILE": "g"}, "BUNDLE_GEMFILE"),
        ("GEM", {"HOME": "h"}, "GEM_HOME"),
        ("VCAP", {"SERVICES": "s"}, "VCAP_SERVICES"),
        ("VCAP", {"APPLICATION": "a"}, "VCAP_APPLICATION"),
        ("DATABASE", {}, "DATABASE_URL"),
        ("1ST", {}, "1ST_URL"),
        ("BAD-NAME", {}, "BAD-NAME_URL"),
        ("SAFE", {"A=B": "x"}, "SAFE_A=B"),
        ("", {}, "_URL"),
    ],
)
def test_a_third_party_rule_with_a_refused_name_falls_back_to_the_default(
    caplog: pytest.LogCaptureFixture, prefix: str, parts: dict[str, str], refused: str
) -> None:
    name = unique("kv-store")
    entry = offering(name, prefix, parts)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rule = rule_for(entry, "acme")
    default = name.upper().replace("-", "_")
    assert (rule.prefix, rule.url, dict(rule.parts)) == (default, ("uri", "url"), {})
    assert var_names(rule, rule.prefix) == [f"{default}_URL"]
    creds = {"uri": "kv://u:p@kv.invalid/1", "x": "/tmp/evil.so", "p": "/tmp", "s": "{}"}
    assert vars_for(rule, rule.prefix, creds) == {f"{default}_URL": "kv://u:p@kv.invalid/1"}
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "broker acme" in message and name in message and repr(refused) in message


def test_a_safe_third_party_rule_is_used_as_published(caplog: pytest.LogCaptureFixture) -> None:
    entry = offering(unique("search"), "SEARCH", {"HOST": "host", "API_KEY": "key"})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rule = rule_for(entry, "acme")
    assert rule.prefix == "SEARCH" and dict(rule.parts) == {"HOST": "host", "API_KEY": "key"}
    assert var_names(rule, "SEARCH") == ["SEARCH_API_KEY", "SEARCH_HOST", "SEARCH_URL"]
    assert [r for r in caplog.records if r.name == LOGGER] == []


def test_database_url_comes_from_moorage_or_where_the_default_gives_it_anyway() -> None:
    published = {"USER": "username", "PORT": "port"}
    # Moorage's own broker publishes DATABASE for its PostgreSQL offerings.
    own = rule_for(offering(unique("cache"), "DATABASE", published), "moorage", own=True)
    assert own.prefix == "DATABASE" and set(own.parts) == {"USER", "PORT"}
    # A third-party PostgreSQL offering gets DATABASE_URL by default: its parts are kept.
    pg = rule_for(offering(unique("acme-postgres"), "DATABASE", published), "acme")
    assert pg.prefix == "DATABASE" and set(pg.parts) == {"USER", "PORT"}
    # A third-party Redis offering may not take over DATABASE_URL.
    redis = rule_for(offering(unique("acme-redis"), "DATABASE", published), "acme")
    assert redis.prefix == "REDIS" and dict(redis.parts) == {}
    # Even Moorage's own broker may not set the loader's or the platform's names.
    assert rule_for(offering(unique("own"), "LD", {"PRELOAD": "x"}), "moorage", own=True).parts == {}
    assert rule_for(offering(unique("own"), "VCAP", {"SERVICES": "s"}), "moorage", own=True).prefix == "VCAP"


def test_the_default_prefix_never_lands_on_a_reserved_name() -> None:
    python = rule_for({"id": "1", "name": "python-cache", "plans": []})
    assert python.prefix == "SERVICE_PYTHON_CACHE"
    assert rule_for({"id": "2", "name": "ld", "plans": []}).prefix == "SERVICE_LD"
    assert rule_for({"id": "3", "name": "moorage-queue", "plans": []}).prefix == "SERVICE_MOORAGE_QUEUE"
    assert rule_for({"id": "4", "name": "queue", "plans": []}).prefix == "QUEUE"


def test_a_malformed_published_rule_uses_the_default() -> None:
    assert rule_for(offering(unique("mq"), 42)).prefix.startswith("MQ_")
    assert rule_for({"name": "mq", "metadata": {"moorage": {"credentials_env": "LD_PRELOAD"}}}).prefix == "MQ"
