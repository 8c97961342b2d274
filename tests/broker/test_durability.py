"""Concurrency, crash recovery and secrets at rest, against the real broker.

- 50 parallel binds on one instance: 50 distinct working credentials.
- Two concurrent provisions with the same id: one resource.
- SIGKILL of the gunicorn-served broker during an async provision: after a restart the
  operation resumes from its checkpoint and succeeds (never "in progress" forever).
- A known secret parameter never appears in the SQLite file or the broker's log.
- ``moorage worker`` as a process of its own runs operations a ``--no-worker`` broker
  recorded; a SIGKILLed worker's operation is resumed by the next worker.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from moorage.embedded.ports import free_port
from tests.fixtures.broker import (
    BrokerProcess,
    OsbClient,
    RunningBroker,
    broker_settings,
    new_id,
    settings_env,
)
from tests.polling import wait_for


def test_fifty_parallel_binds_get_fifty_distinct_credentials(broker: RunningBroker) -> None:
    osb = broker.client
    sid, pid = osb.ids("noop", "sync")
    iid = new_id()
    assert osb.provision(iid, sid, pid, {}).status_code == 201

    def bind(_: int) -> tuple[int, dict]:
        client = OsbClient(broker.url)
        try:
            resp = client.bind(iid, new_id(), sid, pid, {})
            return resp.status_code, resp.json()
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(bind, range(50)))
    assert [code for code, _ in results] == [201] * 50, results[:3]
    usernames = {body["credentials"]["username"] for _, body in results}
    passwords = {body["credentials"]["password"] for _, body in results}
    assert len(usernames) == 50 and len(passwords) == 50


def test_two_concurrent_provisions_with_one_id_make_one_resource(broker: RunningBroker) -> None:
    osb = broker.client
    sid, pid = osb.ids("noop", "async")
    iid = new_id()

    def provision(_: int) -> int:
        client = OsbClient(broker.url)
        try:
            return client.provision(iid, sid, pid, {"steps": 2, "step_seconds": 0.1}).status_code
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = sorted(pool.map(provision, range(2)))
    assert codes == [202, 202]
    assert osb.wait(iid).json()["state"] == "succeeded"
    from sqlalchemy import func, select

    from moorage.store.models import Operation

    with broker.runtime.db.sessions() as session:
        ops = session.scalar(select(func.count()).select_from(Operation).where(Operation.instance_id == iid))
    assert ops == 1


@pytest.mark.slow
def test_sigkill_during_async_provision_resumes_after_restart(tmp_path: Path) -> None:
    settings = broker_settings(tmp_path / "state").with_group(broker={"port": free_port()})
    process = BrokerProcess(settings, settings_env(settings))
    process.start()
    osb = OsbClient(process.url)
    try:
        sid, pid = osb.ids("noop", "async")
        iid = new_id()
        resp = osb.provision(iid, sid, pid, {"steps": 20, "step_seconds": 0.3})
        assert resp.status_code == 202
        operation = resp.json()["operation"]
        # Wait until the worker has made real progress, then kill everything at once.
        _await_step(osb, iid, operation, 3)
        process.kill()
        process.start()
        final = osb.wait(iid, operation=operation, timeout=60)
        assert final.json()["state"] == "succeeded", final.json()
    finally:
        osb.close()
        process.stop()


def _await_step(osb: OsbClient, iid: str, operation: str, step: int) -> None:
    """Wait until the no-op provider reports step ``step`` of its operation, or a later one:
    a loaded machine may answer a poll slower than one step lasts."""

    def reached() -> bool:
        body = osb.last_operation(iid, operation=operation).json()
        match = re.search(r"step (\d+) of", body.get("description", ""))
        if match and int(match.group(1)) >= step:
            return True
        assert body["state"] == "in progress", body
        return False

    wait_for(reached, 30, what=f"the operation to reach step {step}")


def test_secret_parameters_and_credentials_are_not_stored_or_logged_in_clear(
    broker: RunningBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    osb = broker.client
    sid, pid = osb.ids("noop", "sync")
    iid, bid = new_id(), new_id()
    secret = "Sup3r-Secret-Marker-0451"
    assert osb.provision(iid, sid, pid, {"fail_delete": secret}).status_code == 201
    creds = osb.bind(iid, bid, sid, pid, {}).json()["credentials"]
    db_bytes = b"".join(p.read_bytes() for p in broker.settings.data_dir.glob("moorage.db*"))
    assert secret.encode() not in db_bytes
    assert creds["password"].encode() not in db_bytes
    assert secret not in caplog.text
    assert creds["password"] not in caplog.text
    key = broker.settings.key_file
    assert key.stat().st_mode & 0o777 == 0o600
    for state_file in broker.settings.data_dir.glob("moorage.db*"):
        assert state_file.stat().st_mode & 0o777 == 0o600, state_file


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``moorage worker`` (no HTTP): started, and awaited until it says it runs."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moorage.cli.main", "worker"],
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    wait_for(
        lambda: proc.poll() is not None or "moorage worker running" in log.read_text(),
        timeout=30,
        what="the worker to start",
    )
    assert proc.poll() is None, log.read_text()
    return proc


@pytest.mark.slow
def test_a_separate_worker_process_runs_operations_and_another_resumes_after_sigkill(
    tmp_path: Path,
) -> None:
    """``moorage broker --no-worker`` only records; ``moorage worker`` processes run the
    steps, and a SIGKILLed worker's operation is taken over by the next one."""
    settings = broker_settings(tmp_path / "state").with_group(broker={"port": free_port()})
    env = settings_env(settings)
    broker = BrokerProcess(settings, env, "--no-worker")
    broker.start()
    osb = OsbClient(broker.url)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers: list[subprocess.Popen[bytes]] = []
    secret = "Worker-Secret-Marker-7731"
    try:
        sid, pid = osb.ids("noop", "async")
        iid = new_id()
        resp = osb.provision(iid, sid, pid, {"steps": 20, "step_seconds": 0.3, "fail_delete": secret})
        assert resp.status_code == 202
        operation = resp.json()["operation"]
        workers.append(_start_worker(env, logs[0]))
        _await_step(osb, iid, operation, 3)
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait(10)
        workers.append(_start_worker(env, logs[1]))
        final = osb.wait(iid, operation=operation, timeout=60)
        assert final.json()["state"] == "succeeded", final.json()
        outputs = [broker.log.read_bytes(), *(log.read_bytes() for log in logs)]
        outputs += [p.read_bytes() for p in settings.data_dir.glob("moorage.db*")]
        assert not [blob for blob in outputs if secret.encode() in blob]
    finally:
        osb.close()
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
        broker.stop()
