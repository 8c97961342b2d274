"""gcp-bigquery's calls repeated, resumed after a lost answer, or aimed at someone else's dataset.

The operation engine calls a provider again until it returns, so every call must find
what an earlier one made: the dataset by its derived id and label, the service account
by its derived id and description, the key by the name the last call checkpointed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from moorage.errors import PermanentError
from moorage.providers.gcp_bigquery import BigQueryProvider, account_id, dataset_id
from tests.aws.engine import Instance, offering, until_done
from tests.fixtures.gcp import PROJECT, BigQueryEmulator, gcp_settings
from tests.gcp.iam_standin import IamStandIn


@pytest.fixture
def provider(
    gcp_credentials: Path, bigquery_emulator: BigQueryEmulator, iam_standin: IamStandIn, tmp_path: Path
):  # type: ignore[no-untyped-def]
    made = BigQueryProvider(gcp_settings(bigquery_emulator.url, iam_standin.url, tmp_path))
    yield made
    made.close()


def test_repeated_and_resumed_calls_make_one_of_everything(
    provider: BigQueryProvider, iam_standin: IamStandIn
) -> None:
    inst = Instance(offering("gcp-bigquery"), "standard", provider.settings)
    first = provider.provision(inst.ctx()).outputs
    assert provider.provision(inst.ctx()).outputs == first  # 409 on create: found, and ours
    inst.outputs.update(first)

    bound = until_done(lambda out: provider.bind(inst.binding("again", out)), {})
    email = bound.credentials["email"]
    repeat = until_done(lambda out: provider.bind(inst.binding("again", out)), dict(bound.outputs))
    assert repeat.credentials["credentials"] == bound.credentials["credentials"]  # the same key
    lost = until_done(lambda out: provider.bind(inst.binding("again", out)), {})  # the answer was lost
    assert lost.credentials["email"] == email and iam_standin.accounts(email) == [email]
    assert iam_standin.live_keys(email) == [json.loads(lost.credentials["credentials"])["private_key_id"]]
    entries = [
        e
        for e in provider._clients()[0].get_dataset(first["dataset_id"]).access
        if e.get("userByEmail") == email
    ]
    assert entries == [{"role": "WRITER", "userByEmail": email}]

    provider.unbind(inst.binding("again", lost.outputs))
    provider.unbind(inst.binding("again", lost.outputs))  # gone already: success
    provider.unbind(inst.binding("again", {}))
    assert iam_standin.accounts(email) == []
    provider.deprovision(inst.ctx())
    provider.deprovision(inst.ctx())  # gone already: success


def test_a_dataset_of_another_instance_is_not_taken_over(
    provider: BigQueryProvider, bigquery_emulator: BigQueryEmulator
) -> None:
    inst = Instance(offering("gcp-bigquery"), "standard", provider.settings)
    admin = bigquery.Client(
        PROJECT,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=bigquery_emulator.url),
    )
    squatter = bigquery.Dataset(bigquery.DatasetReference(PROJECT, dataset_id(inst.instance_id)))
    squatter.labels = {"moorage-instance": "someone-else"}
    admin.create_dataset(squatter)
    with pytest.raises(PermanentError, match="does not belong to instance"):
        provider.provision(inst.ctx())
    assert admin.get_dataset(squatter.reference).labels == {"moorage-instance": "someone-else"}
    admin.delete_dataset(squatter.reference)


def test_moving_a_dataset_between_locations_is_refused(provider: BigQueryProvider) -> None:
    inst = Instance(offering("gcp-bigquery"), "standard", provider.settings)
    inst.outputs.update(provider.provision(inst.ctx()).outputs)
    inst.parameters["location"] = "EU"
    with pytest.raises(PermanentError, match="cannot move between locations"):
        provider.update(inst.ctx())
    provider.deprovision(inst.ctx())


def test_ids_are_valid_for_bigquery_and_iam() -> None:
    assert dataset_id("0b1c-Ab") != dataset_id("0b1c_Ab")  # a replaced character never merges two ids
    assert dataset_id("abc").startswith("moorage_") and set(dataset_id("a-b.c")) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    )
    ident = account_id("a" * 200)
    assert 6 <= len(ident) <= 30 and ident[0].isalpha() and ident == ident.lower()
    assert account_id("x") != account_id("X")
