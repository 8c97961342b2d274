"""Dedicated Redis at its edges: the bind-address limit, and what an unbind must close.

Real redis-servers through the OSB API, as in ``test_redis_dedicated.py``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import redis

from moorage.embedded.processes import read_pidfile
from moorage.embedded.redis_instance import MAX_BINDINGS
from tests.fixtures.broker import OsbClient
from tests.polling import wait_for
from tests.services.test_redis_dedicated import Instance, app_client


@pytest.fixture
def osb(make_dedicated_broker: Any) -> OsbClient:
    return make_dedicated_broker().client


def _answers(creds: dict[str, Any]) -> bool:
    try:
        return bool(app_client(creds["uri"]).ping())
    except redis.RedisError:
        return False


def test_a_bind_past_the_limit_is_refused_clearly_and_the_server_still_restarts(
    osb: OsbClient, dedicated_data_dir: Path
) -> None:
    inst = Instance(osb, dedicated_data_dir)
    bound = [inst.bind() for _ in range(MAX_BINDINGS)]
    kept = json.loads(inst.server.addresses_file.read_text())

    resp = inst.osb.bind(inst.id, "one-too-many", inst.service_id, inst.plan_id)
    assert resp.status_code == 500, resp.text  # a failed bind: the platform cleans up (OSB)
    assert f"at most {MAX_BINDINGS} bindings" in resp.text and "unbind one first" in resp.text
    assert json.loads(inst.server.addresses_file.read_text()) == kept  # nothing written

    pid = read_pidfile(inst.server.pid_file)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the next start reads redis.conf: it must still be valid
    wait_for(lambda: _answers(bound[0][1]), timeout=20, what="the killed redis-server to be restarted")
    assert all(_answers(creds) for _, creds in bound)

    inst.unbind(bound[0][0])  # a free place: binding works again
    _, again = inst.bind()
    assert _answers(again)


def test_unbind_closes_the_old_password_on_127_0_0_1_and_on_other_bindings_addresses(
    osb: OsbClient, dedicated_data_dir: Path
) -> None:
    inst = Instance(osb, dedicated_data_dir)
    first_id, first = inst.bind()
    _, second = inst.bind()
    on_loopback = app_client(host="127.0.0.1", port=first["port"], password=first["password"])
    on_other_address = app_client(host=second["host"], port=second["port"], password=first["password"])
    for client in (on_loopback, on_other_address):
        assert client.set("k", "v")

    inst.unbind(first_id)
    for client in (on_loopback, on_other_address):
        with pytest.raises(redis.ConnectionError):
            client.get("k")
    assert app_client(second["uri"]).get("k") == "v"  # the other binding reconnects and works
