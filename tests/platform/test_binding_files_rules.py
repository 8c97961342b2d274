"""The rules behind binding files: which vars name a file, which names are un-prefixed, and
what a release's VCAP_SERVICES becomes as files (no processes: the runtime tests are in
test_binding_files_live.py).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import yaml

from moorage.catalog.loader import load_offering
from moorage.errors import ConfigurationError
from moorage.platform.controller.binding_files import project
from moorage.platform.controller.credentials_env import (
    BoundService,
    rule_for,
    var_names,
    vars_for,
    vcap_services,
)
from moorage.platform.identity import AppUser
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.binding_files import materialise
from tests.fixtures.broker import MAIN_CATALOG

KEY = json.dumps({"type": "service_account", "client_email": "b@p.iam.gserviceaccount.com"})
CREDENTIALS = {
    "credentials": KEY,
    "project_id": "p",
    "dataset_id": "moorage_d",
    "email": "b@p",
    "location": "EU",
}


def bigquery_offering() -> dict:
    return load_offering(MAIN_CATALOG / "gcp-bigquery.yaml").to_osb()


@pytest.fixture(scope="module")
def rule():
    return rule_for(bigquery_offering(), "moorage", own=True)


def test_the_default_binding_gets_the_names_client_libraries_read(rule) -> None:
    env = vars_for(rule, rule.prefix, CREDENTIALS)
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "$SERVICE_BINDING_ROOT/bigquery/credentials"
    assert env["BIGQUERY_CREDENTIALS_FILE"] == env["GOOGLE_APPLICATION_CREDENTIALS"]
    assert (env["GOOGLE_CLOUD_PROJECT"], env["BIGQUERY_DATASET"]) == ("p", "moorage_d")
    assert {"GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"} <= set(var_names(rule, rule.prefix))


def test_an_aliased_binding_gets_prefixed_names_only(rule) -> None:
    env = vars_for(rule, "ANALYTICS", CREDENTIALS)
    assert not any(name.startswith("GOOGLE_") for name in env)
    assert env["ANALYTICS_CREDENTIALS_FILE"] == "$SERVICE_BINDING_ROOT/analytics/credentials"
    assert env["ANALYTICS_PROJECT"] == "p"
    assert not set(var_names(rule, "ANALYTICS")) & set(var_names(rule, rule.prefix))


def test_a_broker_cannot_publish_reserved_or_dangling_unprefixed_names() -> None:
    for unprefixed in (
        {"LD_PRELOAD": "URL"},
        {"SERVICE_BINDING_ROOT": "URL"},
        {"GOOGLE_CLOUD_PROJECT": "NOWHERE"},
    ):
        offering = {
            "name": "thing",
            "metadata": {"moorage": {"credentials_env": {"prefix": "THING", "unprefixed": unprefixed}}},
        }
        rule = rule_for(offering, "other")
        assert rule.unprefixed == {} and rule.prefix == "THING"  # the default rule


def test_the_loader_refuses_an_unprefixed_name_copying_nothing(tmp_path: Path) -> None:
    doc = yaml.safe_load((MAIN_CATALOG / "gcp-bigquery.yaml").read_text())
    doc["credentials_env"]["unprefixed"]["GOOGLE_CLOUD_PROJECT"] = "PROJECT_ID"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigurationError, match="PROJECT_ID"):
        load_offering(bad)
    doc["credentials_env"]["files"] = {"CREDENTIALS_FILE": "../etc/passwd"}
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigurationError, match="files"):
        load_offering(bad)


def test_vcap_services_become_files_and_file_vars_become_paths() -> None:
    vcap = vcap_services(
        [
            BoundService(
                label="gcp-bigquery",
                name="bq",
                binding_name="bigquery",
                plan="standard",
                tags=("gcp",),
                credentials={
                    **CREDENTIALS,
                    "nested": {"b": [1, 2]},
                    "port": 5432,
                    "tls": True,
                    "../escape": "x",
                    "type": "theirs",
                    "none": None,
                },
                provider="moorage",
            )
        ]
    )
    assert vcap is not None
    env = {
        "VCAP_SERVICES": vcap,
        "GOOGLE_APPLICATION_CREDENTIALS": "$SERVICE_BINDING_ROOT/bigquery/credentials",
        "DANGLING": "$SERVICE_BINDING_ROOT/bigquery/missing",
        "GREETING": "hi",
    }
    out = project(env)
    files = out.files["bigquery"]
    assert files["credentials"] == KEY and files["project_id"] == "p"
    assert json.loads(files["nested"]) == {"b": [1, 2]} and files["port"] == "5432" and files["tls"] == "true"
    assert (files["type"], files["provider"]) == ("gcp-bigquery", "moorage")
    assert "../escape" not in files and "none" not in files
    assert out.paths == {"GOOGLE_APPLICATION_CREDENTIALS": "bigquery/credentials"}
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in out.env
    assert out.env["DANGLING"] == "$SERVICE_BINDING_ROOT/bigquery/missing" and out.env["GREETING"] == "hi"
    assert project({"VCAP_SERVICES": "not json"}).files == {}


def test_a_deploy_and_a_run_writing_one_release_s_files_at_once_both_get_them(tmp_path: Path) -> None:
    """The local runtime writes a release's binding files on first use; a deploy and a one-off
    run of the same release may get there together, and neither may fail for it."""
    release = ReleaseSpec(
        app="shop",
        version=3,
        slug=str(tmp_path),
        env={},
        processes={},
        binding_files={"database": {"type": "postgresql", "password": "s3cret"}},
    )
    user = AppUser("nobody", 65534, 65534, "nogroup", drop=os.geteuid() == 0)
    start = threading.Barrier(8)
    roots: list[Path | None] = []
    errors: list[BaseException] = []

    def write() -> None:
        start.wait()
        try:
            roots.append(materialise(tmp_path, release, user))
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(roots)) == 1 and roots[0] is not None
    assert (roots[0] / "database" / "password").read_text() == "s3cret"
    assert [p.name for p in roots[0].parent.iterdir()] == ["v3"]  # no staging folder left behind
