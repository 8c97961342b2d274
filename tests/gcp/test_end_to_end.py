"""gcp-bigquery end to end through the CLI: services:create, services:bind to a deployed
Python app, the app's own BigQuery calls, services:unbind.

The app (tests/apps/bq_orders) is built by the real Python buildpack, which installs
google-cloud-bigquery into its slug from the machine's package indexes, and uses only
GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_CLOUD_PROJECT and BIGQUERY_DATASET — plus the
test's one setting, ``BIGQUERY_EMULATOR_HOST`` (set with config:set), the variable
google-cloud-bigquery itself reads to talk to an emulator instead of Google. BigQuery is
the local-bigquery emulator, IAM and the token endpoint the stand-in: the app's key file
is exchanged for a token at the stand-in on every request. The emulator checks no
tokens, so the test shows the unbound key refused at the token endpoint.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.broker import MAIN_CATALOG, PASSWORD
from tests.fixtures.gcp import PROJECT, BigQueryEmulator
from tests.fixtures.platform import APPS_DIR, Cli, LivePlatform, run_live_platform
from tests.gcp.iam_standin import IamStandIn
from tests.gcp.test_osb import admin_client, key_refused

HOST = "orders.moorage.localhost"


@pytest.fixture
def live(
    make_broker: Any, gcp_credentials: Path, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn
) -> Iterator[LivePlatform]:
    broker = make_broker(
        [MAIN_CATALOG],
        gcp={
            "project": PROJECT,
            "bigquery_endpoint": bigquery_emulator.url,
            "iam_endpoint": iam_standin.url,
            "resource_manager_endpoint": iam_standin.url,
        },
    )
    # The real buildpack builder: google-cloud-bigquery is installed into the slug.
    with run_live_platform(
        builder=None, broker={"port": broker.settings.broker.port, "password": PASSWORD}
    ) as platform:
        yield platform


@pytest.fixture
def cli(live: LivePlatform, tmp_path: Path) -> Cli:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return Cli(home=home, cwd=work, url=live.controller.url).logged_in_as("alice")


def orders(live: LivePlatform, n: int) -> tuple[int, dict[str, Any]]:
    status, body = live.get(HOST, f"/orders?n={n}")
    return status, json.loads(body)


def bound_credentials(cli: Cli) -> dict[str, dict[str, Any]]:
    vcap = json.loads(json.loads(cli.ok("config", "--json", "--reveal"))["VCAP_SERVICES"])
    return {e["binding_name"]: e["credentials"] for group in vcap.values() for e in group}


@pytest.mark.slow
def test_create_bind_use_unbind(
    live: LivePlatform, cli: Cli, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn
) -> None:
    cli.ok("apps:create", "orders")
    shutil.copytree(APPS_DIR / "bq_orders", cli.cwd, dirs_exist_ok=True)
    cli.ok("config:set", f"BIGQUERY_EMULATOR_HOST={bigquery_emulator.url}")
    cli.ok("deploy")
    status, body = orders(live, 1)
    assert status == 503 and "DefaultCredentialsError" in body["error"]  # nothing bound yet

    assert "warehouse is ready" in cli.ok("services:create", "gcp-bigquery", "standard", "warehouse")
    out = cli.ok("services:bind", "warehouse", "-a", "orders")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in out and "BIGQUERY_DATASET" in out
    creds = bound_credentials(cli)["bigquery"]

    tokens = iam_standin.count("POST token")
    assert orders(live, 1) == (200, {"rows": [{"n": 1, "item": "item-1"}]})
    assert orders(live, 2) == (200, {"rows": [{"n": 1, "item": "item-1"}, {"n": 2, "item": "item-2"}]})
    assert iam_standin.count("POST token") >= tokens + 2  # the app's key file, exchanged at the stand-in
    table = admin_client(bigquery_emulator).get_table(f"{PROJECT}.{creds['dataset_id']}.orders")
    assert [f.name for f in table.schema] == ["n", "item"]

    # A second dataset on the same app, with --as: its own names, GOOGLE_* untouched.
    cli.ok("services:create", "gcp-bigquery", "scratch", "archive")
    refused = cli("services:bind", "archive", "-a", "orders")
    assert refused.exit_code == 1 and "--as" in refused.output
    cli.ok("services:bind", "archive", "-a", "orders", "--as", "ARCHIVE")
    config = json.loads(cli.ok("config", "--json", "--reveal"))
    archive = bound_credentials(cli)["archive"]
    assert config["ARCHIVE_DATASET"] == archive["dataset_id"] != config["BIGQUERY_DATASET"]
    assert config["GOOGLE_APPLICATION_CREDENTIALS"] == "$SERVICE_BINDING_ROOT/bigquery/credentials"
    assert config["GOOGLE_CLOUD_PROJECT"] == PROJECT
    key_file = cli.ok("run", "-a", "orders", "--", "cat $ARCHIVE_CREDENTIALS_FILE")
    assert archive["email"] in key_file and creds["email"] not in key_file
    assert orders(live, 3)[1]["rows"][-1] == {"n": 3, "item": "item-3"}

    # Unbind: the next request is refused, and the unbound key is refused at the token endpoint.
    cli.ok("services:unbind", "warehouse", "-a", "orders")
    status, body = orders(live, 4)
    assert status == 503 and "credentials" in body["error"].lower(), body
    assert key_refused(creds)
    assert not key_refused(archive)
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in json.loads(cli.ok("config", "--json"))
