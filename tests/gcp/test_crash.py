"""SIGKILL of the broker (gunicorn, with its worker threads) in the middle of a BigQuery bind.

The broker runs as ``moorage broker`` in a subprocess against the emulator and the IAM
stand-in, which holds new keys back (``propagation_seconds``) so the bind is caught
waiting for its key to work: the service account and a key exist, nothing is recorded as
done. The whole process group is killed; a new broker on the same state database resumes
the operation. It finds the same service account (its id comes from the binding id), so
there is exactly one, with exactly one live key — the one the binding hands out.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import httpx
import pytest
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from moorage.providers.gcp_bigquery import account_id
from tests.fixtures.broker import (
    MAIN_CATALOG,
    BrokerProcess,
    OsbClient,
    broker_settings,
    new_id,
    settings_env,
)
from tests.fixtures.gcp import PROJECT, BigQueryEmulator, gcp_env, gcp_group
from tests.gcp.iam_standin import IamStandIn
from tests.polling import wait_for


@pytest.mark.slow
def test_sigkill_during_bind_is_resumed_with_exactly_one_service_account(
    gcp_credentials: Path, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(MAIN_CATALOG / "gcp-bigquery.yaml", catalog)
    settings = broker_settings(tmp_path / "state", [catalog])
    env = settings_env(settings)  # carries GOOGLE_APPLICATION_CREDENTIALS: the broker's default chain
    env.update(gcp_env(gcp_group(bigquery_emulator.url, iam_standin.url)))
    process = BrokerProcess(settings, env)
    process.start()
    osb = OsbClient(process.url)
    before = set(iam_standin.accounts("moorage-"))
    try:
        service_id, plan_id = osb.ids("gcp-bigquery", "scratch")
        instance_id, binding_id = new_id(), new_id()
        assert osb.provision(instance_id, service_id, plan_id, {}).status_code == 201
        email = f"{account_id(binding_id)}@{PROJECT}.iam.gserviceaccount.com"
        iam_standin.state.propagation_seconds = 4.0
        answers: list[object] = []

        def bind() -> None:  # its first step runs inside the request, which the kill cuts off
            client = OsbClient(process.url)
            try:
                answers.append(client.bind(instance_id, binding_id, service_id, plan_id, {}))
            except httpx.TransportError as exc:
                answers.append(exc)
            finally:
                client.close()

        request = threading.Thread(target=bind, daemon=True)
        request.start()
        wait_for(
            lambda: email in iam_standin.accounts() and iam_standin.live_keys(email),
            30,
            what="the bind to get as far as its key",
        )
        process.kill()
        request.join(10)
        assert answers and isinstance(answers[0], httpx.TransportError), answers
        with pytest.raises(httpx.TransportError):  # really down: nothing answers any more
            osb.last_operation(instance_id, binding_id)
        first_key = iam_standin.live_keys(email)
        process.start()
        final = osb.wait(instance_id, binding_id, timeout=90)  # the new broker's worker resumes it
        assert final.json()["state"] == "succeeded", final.json()
        fetched = osb.http.get(f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}")
        creds = fetched.json()["credentials"]
        assert set(iam_standin.accounts("moorage-")) - before == {email}, "exactly one service account"
        live = iam_standin.live_keys(email)
        assert live == [json.loads(creds["credentials"])["private_key_id"]], (
            "exactly one live key: the one handed out"
        )
        assert live != first_key  # the key whose private half died with the broker was deleted
        iam_standin.state.propagation_seconds = 0.0
        key = service_account.Credentials.from_service_account_info(
            json.loads(creds["credentials"]), scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        key.refresh(Request())
        assert osb.unbind(instance_id, binding_id, service_id, plan_id).status_code == 200
        assert osb.deprovision(instance_id, service_id, plan_id).status_code == 200
        assert set(iam_standin.accounts("moorage-")) == before
    finally:
        iam_standin.state.propagation_seconds = 0.0
        osb.close()
        process.stop()
        shutil.rmtree(tmp_path / "state", ignore_errors=True)
