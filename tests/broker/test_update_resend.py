"""A PATCH re-sent while the update it asked for still runs (RULES.md §2.5).

Platforms re-send a request whose answer they lost; for an update in progress the
broker MUST answer 202 with the same ``operation`` (never a 422 that would make the
platform believe the update was refused). A *different* PATCH while busy stays 422
ConcurrencyError, and so does a re-send without ``accepts_incomplete``.
"""

from __future__ import annotations

from typing import Any

from tests.fixtures.broker import OsbClient, new_id


def _ready_async_instance(osb: OsbClient) -> tuple[str, str, str]:
    sid, pid = osb.ids("noop", "async")
    iid = new_id()
    created = osb.provision(iid, sid, pid, {})
    assert created.status_code == 202, created.text
    assert osb.wait(iid, operation=created.json()["operation"]).json()["state"] == "succeeded"
    return iid, sid, pid


def test_identical_patch_while_updating_is_202_with_the_same_operation(osb: OsbClient) -> None:
    iid, sid, pid = _ready_async_instance(osb)
    body: dict[str, Any] = {
        "service_id": sid,
        "plan_id": pid,
        "parameters": {"steps": 20, "step_seconds": 0.1},
        "context": {"platform": "moorage"},
        "previous_values": {"plan_id": pid},
    }
    first = osb.update(iid, body)
    assert first.status_code == 202, first.text
    operation = first.json()["operation"]

    again = osb.update(iid, body)
    assert again.status_code == 202, again.text
    assert again.json()["operation"] == operation
    assert int(again.headers["Retry-After"]) >= 1

    other = osb.update(iid, {**body, "parameters": {"steps": 1}})
    assert other.status_code == 422 and other.json()["error"] == "ConcurrencyError"

    sync_resend = osb.update(iid, body, accepts_incomplete=False)
    assert sync_resend.status_code == 422 and sync_resend.json()["error"] == "ConcurrencyError"

    # Only one update ran: the last operation is the first one, and it finishes.
    assert osb.last_operation(iid).json()["state"] == "in progress"
    final = osb.wait(iid)
    assert final.json()["state"] == "succeeded", final.text
    assert osb.wait(iid, operation=operation).json()["state"] == "succeeded"
    fetched = osb.http.get(f"/v2/service_instances/{iid}").json()
    assert fetched["parameters"]["steps"] == 20

    # Once finished, the same PATCH changes nothing: 200, not a new operation.
    done = osb.update(iid, body)
    assert done.status_code == 200, done.text


def test_patch_with_the_same_parameters_but_another_plan_while_updating_is_422(osb: OsbClient) -> None:
    iid, sid, pid = _ready_async_instance(osb)
    _, other_plan = osb.ids("noop", "no-maintenance")
    params = {"steps": 20, "step_seconds": 0.1}
    first = osb.update(iid, {"service_id": sid, "parameters": params})
    assert first.status_code == 202, first.text
    moved = osb.update(iid, {"service_id": sid, "plan_id": other_plan, "parameters": params})
    assert moved.status_code == 422 and moved.json()["error"] == "ConcurrencyError"
    assert osb.wait(iid).json()["state"] == "succeeded"
    assert osb.http.get(f"/v2/service_instances/{iid}").json()["plan_id"] == pid
