"""gcp-bigquery through the OSB API of a real broker, with the real google-cloud-bigquery client.

BigQuery is the local-bigquery emulator; IAM, keys and the token endpoint are the IAM
stand-in (tests/gcp/iam_standin.py). No BigQuery emulator enforces dataset access
entries or checks credentials: these tests check the access list the broker wrote and
that the token endpoint refuses an unbound key, not that BigQuery would refuse it.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.cloud import bigquery
from google.oauth2 import service_account

from moorage.platform.controller.credentials_env import rule_for, vars_for
from moorage.providers.gcp_bigquery import dataset_id
from tests.fixtures.broker import MAIN_CATALOG, OsbClient, RunningBroker, new_id
from tests.fixtures.gcp import PROJECT, BigQueryEmulator
from tests.gcp.fault_proxy import GoogleFaultProxy
from tests.gcp.iam_standin import IamStandIn


@pytest.fixture
def gcp_catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "catalog"
    folder.mkdir()
    shutil.copy(MAIN_CATALOG / "gcp-bigquery.yaml", folder)
    return folder


def admin_client(emulator: BigQueryEmulator) -> bigquery.Client:
    return bigquery.Client(
        PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=emulator.url)
    )


def app_client(emulator: BigQueryEmulator, creds: dict[str, Any]) -> bigquery.Client:
    """What an app does with its binding: the key JSON, the project, the emulator's endpoint."""
    key = service_account.Credentials.from_service_account_info(json.loads(creds["credentials"]))
    return bigquery.Client(
        creds["project_id"], credentials=key, client_options={"api_endpoint": emulator.url}
    )


def key_refused(creds: dict[str, Any]) -> bool:
    key = service_account.Credentials.from_service_account_info(
        json.loads(creds["credentials"]), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    try:
        key.refresh(Request())
    except RefreshError as exc:
        return "invalid_grant" in str(exc)
    return False


def done(response, expected: tuple[int, ...] = (200, 201)) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    assert response.status_code in expected, response.text
    return response.json()


def service_account_entries(client: bigquery.Client, name: str) -> dict[str, str]:
    """The dataset's access entries for service accounts (the broker's own is its creator)."""
    entries = client.get_dataset(name).access_entries
    return {
        e.entity_id: e.role
        for e in entries
        if e.entity_type == "userByEmail" and not str(e.entity_id).startswith("broker-admin@")
    }


@pytest.fixture
def broker(
    gcp_credentials: Path,
    bigquery_emulator: BigQueryEmulator,
    iam_standin: IamStandIn,
    make_broker,
    gcp_catalog,
) -> RunningBroker:
    return make_broker(
        [gcp_catalog],
        gcp={
            "project": PROJECT,
            "bigquery_endpoint": bigquery_emulator.url,
            "iam_endpoint": iam_standin.url,
            "resource_manager_endpoint": iam_standin.url,
        },
    )


@pytest.fixture
def osb(broker: RunningBroker) -> OsbClient:
    return broker.client


def test_lifecycle_access_entries_are_exactly_the_bindings(
    broker: RunningBroker, osb: OsbClient, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn
) -> None:
    service_id, plan_id = osb.ids("gcp-bigquery", "standard")
    instance_id = new_id()
    params = {"location": "EU", "description": "orders", "default_table_expiration_ms": 86_400_000}
    done(osb.provision(instance_id, service_id, plan_id, params))
    admin = admin_client(bigquery_emulator)
    name = dataset_id(instance_id)
    dataset = admin.get_dataset(name)
    assert (dataset.location, dataset.description, dataset.default_table_expiration_ms) == (
        "EU",
        "orders",
        86_400_000,
    )
    assert dataset.labels["moorage-instance"] == instance_id

    writer, reader = new_id(), new_id()
    w = done(osb.bind(instance_id, writer, service_id, plan_id, {}))["credentials"]
    r = done(osb.bind(instance_id, reader, service_id, plan_id, {"role": "reader"}))["credentials"]
    assert (w["dataset_id"], w["project_id"], w["location"]) == (name, PROJECT, "EU")
    assert json.loads(base64.b64decode(w["PrivateKeyData"])) == json.loads(w["credentials"])
    assert json.loads(w["credentials"])["client_email"] == w["email"]
    assert len(w["email"].split("@")[0]) <= 30
    state = b"".join(p.read_bytes() for p in broker.settings.data_dir.glob("*.db*"))
    assert instance_id.encode() in state  # the state database was read…
    private_key = json.loads(w["credentials"])["private_key"].split("\n")[1]
    assert (
        private_key.encode() not in state and w["PrivateKeyData"][:40].encode() not in state
    )  # …no key in it
    assert service_account_entries(admin, name) == {w["email"]: "WRITER", r["email"]: "READER"}
    offering = next(o for o in osb.catalog()["services"] if o["name"] == "gcp-bigquery")
    rule = rule_for(offering, "moorage", own=True)  # the config vars an app bound to it gets
    env = vars_for(rule, rule.prefix, w)
    assert (env["BIGQUERY_DATASET"], env["BIGQUERY_PROJECT"]) == (name, PROJECT)
    assert json.loads(env["BIGQUERY_CREDENTIALS_JSON"])["client_email"] == w["email"]

    app = app_client(bigquery_emulator, w)  # the key is real: google-auth loads and signs with it
    table = app.create_table(
        bigquery.Table(f"{PROJECT}.{name}.orders", schema=[bigquery.SchemaField("n", "INTEGER")])
    )
    assert app.insert_rows_json(table, [{"n": 1}, {"n": 2}]) == []
    assert [row.n for row in app.list_rows(table)] == [1, 2]

    done(osb.unbind(instance_id, writer, service_id, plan_id))
    assert service_account_entries(admin, name) == {r["email"]: "READER"}
    assert key_refused(w) and not key_refused(r)
    assert w["email"] not in iam_standin.accounts()

    done(osb.unbind(instance_id, reader, service_id, plan_id))
    assert service_account_entries(admin, name) == {}
    refused = osb.deprovision(instance_id, service_id, plan_id)
    assert refused.status_code == 422 and refused.json()["instance_usable"] is True, refused.text
    assert "has tables, so it was not deleted" in refused.text and "force_delete" in refused.text
    assert admin.get_dataset(name).dataset_id == name  # nothing was deleted

    done(osb.update(instance_id, {"service_id": service_id, "parameters": {"force_delete": True}}))
    done(osb.deprovision(instance_id, service_id, plan_id))
    assert name not in {d.dataset_id for d in admin.list_datasets()}
    # Other tests share the stand-in: only this instance's accounts are looked for.
    assert key_refused(r) and not {w["email"], r["email"]} & set(iam_standin.accounts("moorage-"))


def test_bad_parameters_are_refused_and_change_nothing(
    osb: OsbClient, bigquery_emulator: BigQueryEmulator
) -> None:
    service_id, plan_id = osb.ids("gcp-bigquery", "standard")
    instance_id = new_id()
    response = osb.provision(instance_id, service_id, plan_id, {"location": "the-moon"})
    assert response.status_code == 400 and "location" in response.text
    assert dataset_id(instance_id) not in {
        d.dataset_id for d in admin_client(bigquery_emulator).list_datasets()
    }


def test_googles_own_message_reaches_the_platform(
    gcp_credentials: Path,
    bigquery_emulator: BigQueryEmulator,
    iam_standin: IamStandIn,
    make_broker,
    gcp_catalog,
) -> None:
    proxy = GoogleFaultProxy(bigquery_emulator.host, bigquery_emulator.port)
    try:
        broker = make_broker(
            [gcp_catalog],
            gcp={"project": PROJECT, "bigquery_endpoint": proxy.url, "iam_endpoint": iam_standin.url},
        )
        osb = broker.client
        service_id, plan_id = osb.ids("gcp-bigquery", "standard")
        denied = "Access Denied: Project test-project: User does not have bigquery.datasets.create permission"
        proxy.fail("POST datasets", 1, status=403, message=denied)
        instance_id = new_id()
        response = osb.provision(instance_id, service_id, plan_id, {})
        if response.status_code == 202:
            response = osb.wait(instance_id, operation=response.json().get("operation"))
        assert f"BigQuery: {denied}" in response.text
        assert proxy.count("POST datasets") == 1  # a 403 is not retried
    finally:
        proxy.close()
