"""The broker with its state in PostgreSQL instead of SQLite (several replicas share it).

Two brokers (each with its own worker threads) on one PostgreSQL state database and one
encryption key: parallel binds through both, an async provision started on one and finished by whichever
worker claims it, and the one-operation-per-instance rule enforced by the database.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fixtures.broker import OsbClient, RunningBroker, new_id


def test_two_brokers_share_postgresql_state(
    postgres_database: str, make_broker: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    key = tmp_path / "shared.key"  # replicas must share the encryption key, as they share the state
    first = make_broker(database_url=postgres_database, key_file=key)
    second = make_broker(database_url=postgres_database, key_file=key)
    a, b = first.client, second.client
    sid, pid = a.ids("noop", "async")
    iid = new_id()
    created = a.provision(iid, sid, pid, {"steps": 3, "step_seconds": 0.05})
    assert created.status_code == 202
    # Either broker answers for the instance: the state is shared.
    final = b.wait(iid, operation=created.json()["operation"]).json()
    assert final["state"] == "succeeded", final
    busy = a.update(iid, {"service_id": sid, "parameters": {"steps": 10, "step_seconds": 0.1}})
    assert busy.status_code == 202
    assert (
        b.update(iid, {"service_id": sid, "parameters": {"steps": 1}}).json()["error"] == "ConcurrencyError"
    )
    b.wait(iid)

    sync_sid, sync_pid = a.ids("noop", "sync")
    target = new_id()
    assert a.provision(target, sync_sid, sync_pid, {}).status_code == 201

    def bind(n: int) -> int:
        client = OsbClient((first if n % 2 else second).url)
        try:
            resp = client.bind(target, new_id(), sync_sid, sync_pid, {})
            return resp.status_code if resp.status_code == 201 else resp.text  # the text says why
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(bind, range(20))) == [201] * 20
