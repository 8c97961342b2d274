"""An operation past its deadline gets one last provider call, and keeps its checkpoint.

The broker runs without worker threads, so the queued asynchronous provision is first
stepped (by hand, as a worker would) only after its plan's deadline has passed: that
last call creates the backend resource and checkpoints its outputs; the operation then
fails as late, and the checkpoint stays with the instance so a delete can find what
exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from moorage.store.base import utcnow
from moorage.store.models import Operation, ServiceInstance
from tests.fixtures.broker import RunningBroker, new_id, noop_catalog_with_async_limit
from tests.polling import wait_for


def test_a_step_past_the_deadline_fails_late_and_keeps_its_checkpoint(
    tmp_path: Path, make_broker: Callable[..., RunningBroker]
) -> None:
    broker = make_broker([noop_catalog_with_async_limit(tmp_path / "catalog", 1)], worker={"threads": 0})
    osb = broker.client
    sid, pid = osb.ids("noop", "async")
    iid = new_id()
    resp = osb.provision(iid, sid, pid, {"steps": 5, "step_seconds": 0.1})
    assert resp.status_code == 202
    engine, db = broker.runtime.engine, broker.runtime.db
    with db.sessions() as session:
        deadline = session.get(Operation, resp.json()["operation"]).deadline
    wait_for(lambda: utcnow() > deadline, timeout=5, what="the plan's 1 s deadline to pass")

    op_id = engine.claim_next()
    assert op_id == resp.json()["operation"]
    outcome = engine.run_step(op_id)

    assert outcome.state == "failed"
    assert outcome.description == "provision did not finish in time: step 0 of 5"
    assert osb.last_operation(iid).json() == {"state": "failed", "description": outcome.description}
    with db.sessions() as session:
        outputs = broker.runtime.encryptor.decrypt_json(session.get(ServiceInstance, iid).outputs_enc)
    assert outputs.get("step") == 1, "the last call's checkpoint is kept"
