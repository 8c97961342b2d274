"""Google answering 429 and 5xx, IAM keys that are not accepted yet, and the project role.

Fault proxies sit between the provider and both the BigQuery emulator and the IAM stand-in;
the provider is driven as the operation engine drives it (tests/aws/engine.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from moorage.errors import PermanentError, ProviderError
from moorage.providers.gcp_bigquery import BigQueryProvider
from tests.aws.engine import Instance, Run, offering, until_done
from tests.fixtures.gcp import BigQueryEmulator, gcp_settings
from tests.gcp.fault_proxy import GoogleFaultProxy
from tests.gcp.iam_standin import IamStandIn


@pytest.fixture
def proxies(
    gcp_credentials: Path, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn
) -> Iterator[tuple[GoogleFaultProxy, GoogleFaultProxy]]:
    port = int(iam_standin.url.rsplit(":", 1)[1])
    bq, iam = (
        GoogleFaultProxy(bigquery_emulator.host, bigquery_emulator.port),
        GoogleFaultProxy("127.0.0.1", port),
    )
    try:
        yield bq, iam
    finally:
        bq.close()
        iam.close()


def test_429_and_5xx_are_retried_and_the_work_completes(
    proxies, iam_standin: IamStandIn, tmp_path: Path
) -> None:
    bq, iam = proxies
    provider = BigQueryProvider(gcp_settings(bq.url, iam.url, tmp_path))
    inst = Instance(offering("gcp-bigquery"), "scratch", provider.settings)
    bq.fail("POST datasets", 2, status=500, message="Backend error. Please try again.")
    bq.fail("GET dataset", 1, status=429, message="Exceeded rate limits: too many api requests per user")
    iam.fail("POST serviceAccounts", 2, status=503, message="The service is currently unavailable.")
    iam.fail("POST keys", 1, status=429, message="Quota exceeded for quota metric 'Requests'")
    inst.outputs.update(provider.provision(inst.ctx()).outputs)
    assert bq.count("POST datasets") == 3
    result = until_done(lambda out: provider.bind(inst.binding("retried", out)), {})
    assert iam.count("POST serviceAccounts") == 3 and iam.count("POST keys") == 2
    assert bq.count("GET dataset") >= 2  # the access list's read was retried too
    assert result.credentials["email"] in iam_standin.accounts()
    provider.unbind(inst.binding("retried", result.outputs))
    provider.deprovision(inst.ctx())
    assert result.credentials["email"] not in iam_standin.accounts()
    provider.close()


def test_after_the_retry_budget_the_error_carries_googles_message(proxies, tmp_path: Path) -> None:
    bq, iam = proxies
    provider = BigQueryProvider(gcp_settings(bq.url, iam.url, tmp_path, retry_seconds=0.5))
    inst = Instance(offering("gcp-bigquery"), "scratch", provider.settings)
    bq.fail("POST datasets", 50, status=503, message="The BigQuery service is unavailable")
    with pytest.raises(ProviderError, match="BigQuery: The BigQuery service is unavailable") as info:
        provider.provision(inst.ctx())
    assert not isinstance(info.value, PermanentError)  # the engine will retry later
    assert bq.count("POST datasets") >= 2
    bq.state.faults.clear()
    bq.fail("POST datasets", 1, status=400, message="Invalid dataset location")
    before = bq.count("POST datasets")
    with pytest.raises(PermanentError, match="Invalid dataset location"):  # 4xx: no retry
        provider.provision(inst.ctx())
    assert bq.count("POST datasets") == before + 1
    provider.close()


def test_a_new_key_is_returned_only_once_the_token_endpoint_accepts_it(
    gcp_credentials: Path, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn, tmp_path: Path
) -> None:
    provider = BigQueryProvider(gcp_settings(bigquery_emulator.url, iam_standin.url, tmp_path))
    inst = Instance(offering("gcp-bigquery"), "scratch", provider.settings)
    inst.outputs.update(provider.provision(inst.ctx()).outputs)
    iam_standin.state.propagation_seconds = 1.0
    try:
        refused_before = iam_standin.count("POST token")
        started = time.monotonic()
        result = until_done(lambda out: provider.bind(inst.binding("slow-key", out)), {})
        assert time.monotonic() - started >= 1.0
        assert iam_standin.count("POST token") - refused_before >= 2  # refused at first, then accepted
    finally:
        iam_standin.state.propagation_seconds = 0.0
    key = service_account.Credentials.from_service_account_info(
        json.loads(result.credentials["credentials"]),
        scopes=["https://www.googleapis.com/auth/cloud-platform"],
    )
    key.refresh(Request())  # works the moment the app gets it
    assert key.token
    provider.unbind(inst.binding("slow-key", result.outputs))
    provider.deprovision(inst.ctx())
    provider.close()


def test_a_new_account_not_yet_visible_to_iam_is_waited_for(
    gcp_credentials: Path, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn, tmp_path: Path
) -> None:
    provider = BigQueryProvider(gcp_settings(bigquery_emulator.url, iam_standin.url, tmp_path))
    inst = Instance(offering("gcp-bigquery"), "scratch", provider.settings)
    inst.outputs.update(provider.provision(inst.ctx()).outputs)
    iam_standin.state.account_propagation_seconds = 0.5
    run = Run()
    try:
        result = until_done(lambda out: provider.bind(inst.binding("unseen", out)), {}, run=run)
    finally:
        iam_standin.state.account_propagation_seconds = 0.0
    assert any("not visible to IAM yet" in wait for wait in run.waits)
    assert len(iam_standin.live_keys(result.credentials["email"])) == 1
    provider.unbind(inst.binding("unseen", result.outputs))
    provider.deprovision(inst.ctx())
    provider.close()


def test_job_user_is_granted_on_the_project_only_when_the_operator_enables_it(
    gcp_credentials: Path, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn, tmp_path: Path
) -> None:
    def job_users() -> list[str]:
        return [
            m
            for b in iam_standin.policy()["bindings"]
            if b["role"] == "roles/bigquery.jobUser"
            for m in b["members"]
        ]

    for enabled in (False, True):
        provider = BigQueryProvider(
            gcp_settings(bigquery_emulator.url, iam_standin.url, tmp_path, grant_job_user=enabled)
        )
        inst = Instance(offering("gcp-bigquery"), "scratch", provider.settings)
        inst.outputs.update(provider.provision(inst.ctx()).outputs)
        result = until_done(
            lambda out, p=provider, i=inst, e=enabled: p.bind(i.binding(f"jobs-{e}", out)), {}
        )
        member = f"serviceAccount:{result.credentials['email']}"
        assert (member in job_users()) is enabled
        roles = {b["role"] for b in iam_standin.policy()["bindings"]}
        assert roles <= {"roles/bigquery.jobUser"}, "never a project-wide data role"
        provider.unbind(inst.binding(f"jobs-{enabled}", result.outputs))
        assert member not in job_users()
        assert all(b["members"] for b in iam_standin.policy()["bindings"]), "no empty role binding left"
        provider.deprovision(inst.ctx())
        provider.close()


def test_a_stale_etag_412_makes_bind_read_the_access_list_again(proxies, tmp_path: Path) -> None:
    bq, iam = proxies
    provider = BigQueryProvider(gcp_settings(bq.url, iam.url, tmp_path))
    inst = Instance(offering("gcp-bigquery"), "scratch", provider.settings)
    inst.outputs.update(provider.provision(inst.ctx()).outputs)
    bq.fail("PATCH dataset", 1, status=412, message="Precondition check failed.")
    reads = bq.count("GET dataset")
    result = until_done(lambda out: provider.bind(inst.binding("etag", out)), {})
    assert bq.count("PATCH dataset") == 2 and bq.count("GET dataset") == reads + 2
    emails = [
        e.get("userByEmail") for e in provider._clients()[0].get_dataset(inst.outputs["dataset_id"]).access
    ]
    assert emails.count(result.credentials["email"]) == 1
    provider.unbind(inst.binding("etag", result.outputs))
    provider.deprovision(inst.ctx())
    provider.close()


def test_concurrent_binds_of_one_dataset_all_land_in_its_access_list(
    gcp_credentials: Path, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn, tmp_path: Path
) -> None:
    """Dataset writes go through a proxy that makes the emulator's etag check atomic, as
    BigQuery's is (see tests/gcp/fault_proxy.py); the provider's 412 retries do the rest."""
    atomic = GoogleFaultProxy(bigquery_emulator.host, bigquery_emulator.port, serialize=("PATCH dataset",))
    provider = BigQueryProvider(gcp_settings(atomic.url, iam_standin.url, tmp_path))
    inst = Instance(offering("gcp-bigquery"), "scratch", provider.settings)
    inst.outputs.update(provider.provision(inst.ctx()).outputs)
    ids = [f"together-{n}" for n in range(4)]
    with ThreadPoolExecutor(len(ids)) as pool:  # each write carries the etag it read; 412s are retried
        results = list(
            pool.map(lambda b: until_done(lambda out: provider.bind(inst.binding(b, out)), {}), ids)
        )
    access = provider._clients()[0].get_dataset(inst.outputs["dataset_id"]).access
    bound = {e["userByEmail"]: e["role"] for e in access if e.get("userByEmail", "").startswith("moorage-")}
    assert bound == {r.credentials["email"]: "WRITER" for r in results}
    with ThreadPoolExecutor(len(ids)) as pool:
        list(
            pool.map(
                lambda pair: provider.unbind(inst.binding(pair[0], pair[1].outputs)),
                zip(ids, results, strict=True),
            )
        )
    access = provider._clients()[0].get_dataset(inst.outputs["dataset_id"]).access
    assert [e for e in access if e.get("userByEmail", "").startswith("moorage-")] == []
    provider.deprovision(inst.ctx())
    provider.close()
    atomic.close()
