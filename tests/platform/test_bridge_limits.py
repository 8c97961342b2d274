"""The bridge gives up within the plan's polling limit, orphan clean-up included.

A real no-op broker over HTTP serves the test catalog with the ``async`` plan's
``maximum_polling_duration`` cut to 2 s (a copy in the test's own catalog directory, so
the shared catalog and the tests that list its plans stay as they are). The controller's
own limit stays at 30 s: a create that waited for a slow clean-up under that limit would
take half a minute before the instance is marked failed. No app runs: the runtime is
``InertRuntime``, as the limit is the controller's own bookkeeping.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from moorage.settings import Settings
from tests.fixtures.broker import PASSWORD, RunningBroker, noop_catalog_with_async_limit
from tests.fixtures.platform import InertRuntime, serve_controller

PLAN_LIMIT = 2
GLOBAL_LIMIT = 30.0


def test_a_slow_orphan_clean_up_does_not_hold_the_create_past_the_plan_limit(
    tmp_path: Path, make_broker: Callable[..., RunningBroker], inert_runtime: InertRuntime
) -> None:
    broker = make_broker(catalog_dirs=[noop_catalog_with_async_limit(tmp_path / "catalog", PLAN_LIMIT)])
    settings = Settings(data_dir=tmp_path / "ctl").with_group(
        broker={"port": broker.settings.broker.port, "password": PASSWORD},
        platform={"osb_max_polling_seconds": GLOBAL_LIMIT},
    )
    with serve_controller(settings, inert_runtime) as ctl:
        alice = ctl.user("alice")
        market = alice.get("/v2/marketplace/noop").json()
        limits = {p["name"]: p["maximum_polling_duration"] for p in market["plans"]}
        assert limits["async"] == PLAN_LIMIT

        # Each provision and deprovision step asks the broker to come back in 20 s: the
        # provision cannot finish within the plan's 2 s, nor the clean-up's DELETE.
        body = {
            "service": "noop",
            "plan": "async",
            "name": "stuck",
            "parameters": {"steps": 1000, "step_seconds": 20, "delete_steps": 1000},
        }
        started = time.monotonic()
        with alice.stream("POST", "/v2/services", json=body) as r:
            r.read()
        elapsed = time.monotonic() - started
        lines = [json.loads(line) for line in r.text.splitlines() if line.strip()]

        assert "error" in lines[-1], lines
        assert f"did not finish within {PLAN_LIMIT} s" in lines[-1]["error"]["message"]
        # Provisioning (2 s) plus the clean-up (at most another 2 s), not the global 30 s.
        assert elapsed < 3 * PLAN_LIMIT + 2, f"the create took {elapsed:.1f} s"
        info = alice.get("/v2/services/stuck").json()
        assert info["state"] == "failed" and "did not finish within" in info["description"]
        # The clean-up was asked for: the broker is deleting the instance on its own.
        op = broker.client.last_operation(info["id"])
        assert op.status_code == 200 and op.json()["state"] == "in progress", op.text
