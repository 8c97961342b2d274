"""A controller killed in the middle of a service command: what the next one makes of it.

Real processes throughout (see ``tests.fixtures.stack``): ``moorage broker`` serving the
test catalog's no-op offering, ``moorage controller`` with its supervisor running the
rt_echo app. The broker is stopped (SIGSTOP) so the controller's request waits at it;
once the request has reached the broker's socket, the controller is killed (SIGKILL of
its process group) and the broker goes on (SIGCONT), answering a client that is gone.
A new controller then settles what was left (``controller.service_recovery``), and the
test compares what the user sees and what the broker holds.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from moorage.store import models as broker_models
from moorage.store.db import Database
from tests.fixtures.broker import TEST_CATALOG
from tests.fixtures.stack import Stack
from tests.polling import wait_for

APP_DIR = Path(__file__).resolve().parent.parent / "apps" / "rt_echo"
APP = "shop"


@pytest.fixture
def stack() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="moorage-crash-"))
    root.chmod(0o755)
    s = Stack(root, MOORAGE_CATALOG_DIR=str(TEST_CATALOG))
    s.start_broker()
    s.start_controller()
    s.deploy(APP_DIR, APP)
    yield s
    s.close()
    shutil.rmtree(root, ignore_errors=True)


def broker_count(stack: Stack, model: Any) -> int:
    """What the broker holds (rows not gone), read from its own tables."""
    db = Database(f"sqlite:///{stack.data_dir / 'moorage.db'}")
    try:
        with db.sessions() as s:
            return (
                s.scalar(select(func.count()).select_from(model).where(model.status != broker_models.GONE))
                or 0
            )
    finally:
        db.engine.dispose()


def broker_status(stack: Stack) -> str | None:
    """The status of the one instance the broker holds."""
    db = Database(f"sqlite:///{stack.data_dir / 'moorage.db'}")
    try:
        with db.sessions() as s:
            return s.scalar(select(broker_models.ServiceInstance.status))
    finally:
        db.engine.dispose()


def request_waits_at_broker(port: int) -> bool:
    """A connection to the broker's port holds bytes the (stopped) broker has not read yet."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            rx_queue = int(fields[4].split(":")[1], 16)
            if local_port == port and fields[3] == "01" and rx_queue > 0:
                return True
    return False


def crash_during(
    stack: Stack, call: Callable[[httpx.Client], Any], ready: Callable[[], bool] = lambda: True
) -> None:
    """Run ``call`` against a stopped broker; once ``ready`` and its request waits at the
    broker, kill the controller, let the broker go on, and start a new controller."""
    stack.signal_broker(signal.SIGSTOP)
    client = stack.client(timeout=120)
    caller = threading.Thread(target=lambda: _ignore_the_answer(call, client), daemon=True)
    caller.start()
    try:
        wait_for(ready, 60, interval=0.05, what="the command to reach its broker call")
        wait_for(
            lambda: request_waits_at_broker(stack.broker_port),
            60,
            interval=0.02,
            what="the request at the broker",
        )
        stack.kill_controller(signal.SIGKILL)
    finally:
        stack.signal_broker(signal.SIGCONT)
    caller.join(60)
    client.close()


def _ignore_the_answer(call: Callable[[httpx.Client], Any], client: httpx.Client) -> None:
    try:
        call(client)
    except httpx.HTTPError:
        pass  # the controller was killed under it


def instance(stack: Stack, name: str) -> dict[str, Any]:
    r = stack.api(f"/v2/services/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def app_config(stack: Stack) -> dict[str, str]:
    return stack.api(f"/v2/apps/{APP}/config?reveal=1").json()["values"]


def create(client: httpx.Client, name: str) -> None:
    with client.stream("POST", "/v2/services", json={"service": "noop", "plan": "sync", "name": name}) as r:
        r.read()


def test_a_bind_interrupted_at_the_broker_is_unbound_there_and_forgotten(stack: Stack) -> None:
    with stack.client() as alice:
        create(alice, "cache")
    assert instance(stack, "cache")["state"] == "ready"
    before = broker_count(stack, broker_models.ServiceBinding)

    binding = [{"app": APP, "as": "NOOP", "state": "binding"}]
    crash_during(
        stack,
        lambda c: c.post("/v2/services/cache/bindings", json={"app": APP}),
        ready=lambda: instance(stack, "cache")["bindings"] == binding,
    )
    # The broker made the binding for the controller that is gone.
    wait_for(lambda: broker_count(stack, broker_models.ServiceBinding) == before + 1, what="the bind to land")

    stack.start_controller()
    wait_for(lambda: instance(stack, "cache")["bindings"] == [], what="the interrupted binding to be settled")
    assert broker_count(stack, broker_models.ServiceBinding) == before
    assert not any(name.startswith("NOOP") for name in app_config(stack))
    stack.cli("services:bind", "cache")  # the name is free again
    assert instance(stack, "cache")["bindings"] == [{"app": APP, "as": "NOOP", "state": "bound"}]


def test_an_unbind_interrupted_at_the_broker_is_finished_by_the_next_controller(stack: Stack) -> None:
    with stack.client() as alice:
        create(alice, "cache")
        assert alice.post("/v2/services/cache/bindings", json={"app": APP}).status_code == 201
    assert any(name.startswith("NOOP_") for name in app_config(stack))
    bound = broker_count(stack, broker_models.ServiceBinding)
    releases = len(stack.api(f"/v2/apps/{APP}/releases").json()["results"])

    def detached() -> bool:  # the release without the vars went out before the broker call
        return len(stack.api(f"/v2/apps/{APP}/releases").json()["results"]) == releases + 1

    crash_during(stack, lambda c: c.delete(f"/v2/services/cache/bindings/{APP}"), ready=detached)

    stack.start_controller()
    wait_for(lambda: instance(stack, "cache")["bindings"] == [], what="the interrupted unbind to be finished")
    assert broker_count(stack, broker_models.ServiceBinding) == bound - 1
    assert not any(name.startswith("NOOP") for name in app_config(stack))


def test_a_create_interrupted_while_the_broker_provisions_fails_and_can_be_destroyed(stack: Stack) -> None:
    """An asynchronous create: the controller dies while it polls; the broker finishes alone."""
    slow = {
        "service": "noop",
        "plan": "async",
        "name": "cache",
        "parameters": {"steps": 20, "step_seconds": 0.1},
    }
    client = stack.client(timeout=120)
    caller = threading.Thread(
        target=lambda: _ignore_the_answer(lambda c: c.post("/v2/services", json=slow), client)
    )
    caller.start()
    wait_for(
        lambda: broker_count(stack, broker_models.ServiceInstance) == 1,
        what="the broker to start provisioning",
    )
    assert instance(stack, "cache")["state"] == "creating"
    stack.kill_controller(signal.SIGKILL)
    caller.join(60)
    client.close()
    wait_for(lambda: broker_status(stack) == broker_models.READY, what="the broker to finish provisioning")

    stack.start_controller()
    wait_for(
        lambda: instance(stack, "cache")["state"] == "failed", what="the interrupted create to be settled"
    )
    assert "run `moorage services:destroy cache`" in instance(stack, "cache")["description"]
    stack.cli("services:destroy", "cache", "--confirm", "cache")
    assert stack.api("/v2/services/cache").status_code == 404
    assert broker_count(stack, broker_models.ServiceInstance) == 0
