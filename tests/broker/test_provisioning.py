"""Provisioning, updating and deprovisioning over HTTP: the status codes of RULES.md §2.6.

Covers: 201/200/202/409/410/422 for PUT, PATCH and DELETE of instances, sync and async
plans, re-sent requests while in progress, deleting while creating, last_operation
404/410/Retry-After, fetching an instance, and maintenance_info conflicts.
"""

from __future__ import annotations

from tests.fixtures.broker import OsbClient, new_id


def _noop(osb: OsbClient, plan: str = "sync") -> tuple[str, str]:
    return osb.ids("noop", plan)


def test_sync_provision_is_201_then_identical_put_is_200(osb: OsbClient) -> None:
    sid, pid = _noop(osb)
    iid = new_id()
    first = osb.provision(iid, sid, pid, {}, accepts_incomplete=False)
    assert first.status_code == 201, first.text
    again = osb.provision(iid, sid, pid, {}, accepts_incomplete=False)
    assert again.status_code == 200, again.text
    fetched = osb.http.get(f"/v2/service_instances/{iid}")
    assert fetched.status_code == 200
    assert fetched.json()["service_id"] == sid and fetched.json()["plan_id"] == pid
    assert fetched.json()["maintenance_info"]["version"]


def test_same_id_with_other_attributes_is_409_and_changes_nothing(osb: OsbClient) -> None:
    sid, pid = _noop(osb)
    iid = new_id()
    assert osb.provision(iid, sid, pid, {}).status_code == 201
    conflict = osb.provision(iid, sid, pid, {"steps": 1})
    assert conflict.status_code == 409
    assert osb.http.get(f"/v2/service_instances/{iid}").json()["plan_id"] == pid


def test_async_plan_without_accepts_incomplete_is_422_async_required(osb: OsbClient) -> None:
    sid, pid = _noop(osb, "async")
    iid = new_id()
    resp = osb.provision(iid, sid, pid, {}, accepts_incomplete=False)
    assert resp.status_code == 422
    assert resp.json()["error"] == "AsyncRequired"
    assert osb.last_operation(iid).status_code == 404, "a refused request must leave nothing behind"


def test_async_provision_202_then_poll_until_succeeded(osb: OsbClient) -> None:
    sid, pid = _noop(osb, "async")
    iid = new_id()
    resp = osb.provision(iid, sid, pid, {"steps": 3, "step_seconds": 0.2})
    assert resp.status_code == 202, resp.text
    operation = resp.json()["operation"]
    assert int(resp.headers["Retry-After"]) >= 1
    poll = osb.last_operation(iid, operation=operation)
    assert poll.status_code == 200
    assert poll.json()["state"] == "in progress"
    assert "Retry-After" in poll.headers
    # While it is being provisioned, the instance cannot be fetched yet.
    assert osb.http.get(f"/v2/service_instances/{iid}").status_code == 404
    # A re-sent PUT while in progress answers 202 with the same operation.
    again = osb.provision(iid, sid, pid, {"steps": 3, "step_seconds": 0.2})
    assert again.status_code == 202 and again.json()["operation"] == operation
    final = osb.wait(iid, operation=operation)
    assert final.json()["state"] == "succeeded"
    assert osb.http.get(f"/v2/service_instances/{iid}").status_code == 200


def test_failed_provision_reports_failed_and_can_be_deleted(osb: OsbClient) -> None:
    sid, pid = _noop(osb, "async")
    iid = new_id()
    resp = osb.provision(
        iid, sid, pid, {"steps": 1, "step_seconds": 0.05, "fail": "quota exceeded for tests"}
    )
    assert resp.status_code == 202, resp.text  # an async plan answers before any backend call
    final = osb.wait(iid, operation=resp.json()["operation"])
    assert final.json() == {"state": "failed", "description": "quota exceeded for tests"}
    deleted = osb.deprovision(iid, sid, pid)
    assert deleted.status_code == 202  # an async plan deprovisions in the background
    assert osb.wait(iid).status_code == 410


def test_sync_provision_failure_is_5xx_so_platforms_clean_up(osb: OsbClient) -> None:
    sid, pid = _noop(osb)
    iid = new_id()
    resp = osb.provision(iid, sid, pid, {"fail": "backend refused"}, accepts_incomplete=False)
    assert resp.status_code == 500
    assert "backend refused" in resp.json()["description"]
    assert osb.deprovision(iid, sid, pid, accepts_incomplete=False).status_code == 200


def test_deprovision_is_200_then_410_and_last_operation_410(osb: OsbClient) -> None:
    sid, pid = _noop(osb)
    iid = new_id()
    assert osb.provision(iid, sid, pid, {}).status_code == 201
    assert osb.deprovision(iid, sid, pid).status_code == 200
    assert osb.deprovision(iid, sid, pid).status_code == 410
    assert osb.last_operation(iid).status_code == 410
    assert osb.http.get(f"/v2/service_instances/{iid}").status_code == 404


def test_async_deprovision_then_poll_ends_in_410(osb: OsbClient) -> None:
    sid, pid = _noop(osb, "async")
    iid = new_id()
    osb.provision(iid, sid, pid, {})
    assert osb.wait(iid).json()["state"] == "succeeded"
    resp = osb.deprovision(iid, sid, pid)
    assert resp.status_code == 202  # an async plan deprovisions in the background
    assert osb.wait(iid).status_code == 410


def test_delete_of_unknown_instance_is_410(osb: OsbClient) -> None:
    sid, pid = _noop(osb)
    assert osb.deprovision(new_id(), sid, pid).status_code == 410


def test_deleting_while_creating_halts_creation(osb: OsbClient) -> None:
    sid, pid = _noop(osb, "async")
    iid = new_id()
    created = osb.provision(iid, sid, pid, {"steps": 50, "step_seconds": 0.1})
    assert created.status_code == 202
    deleted = osb.deprovision(iid, sid, pid)
    assert deleted.status_code == 202  # an async plan deprovisions in the background
    assert osb.wait(iid).status_code == 410
    first = osb.last_operation(iid, operation=created.json()["operation"])
    assert first.json()["state"] == "failed" and "cancelled" in first.json()["description"]


def test_last_operation_of_unknown_instance_is_404(osb: OsbClient) -> None:
    resp = osb.last_operation(new_id())
    assert resp.status_code == 404
    assert resp.json()["description"]


def test_update_parameters_and_plan(osb: OsbClient) -> None:
    sid, pid = _noop(osb)
    _, other = _noop(osb, "no-maintenance")
    iid = new_id()
    osb.provision(iid, sid, pid, {})
    same = osb.update(iid, {"service_id": sid, "parameters": {}})
    assert same.status_code == 200 and same.json() == {}
    changed = osb.update(iid, {"service_id": sid, "plan_id": other, "parameters": {"steps": 0}})
    assert changed.status_code == 200, changed.text
    assert osb.http.get(f"/v2/service_instances/{iid}").json()["plan_id"] == other


def test_update_invalid_parameters_is_400_and_changes_nothing(osb: OsbClient) -> None:
    sid, pid = _noop(osb)
    iid = new_id()
    osb.provision(iid, sid, pid, {"steps": 0})
    resp = osb.update(iid, {"service_id": sid, "parameters": {"steps": "many"}})
    assert resp.status_code == 400
    assert "steps" in resp.json()["description"]
    assert osb.http.get(f"/v2/service_instances/{iid}").json()["parameters"]["steps"] == 0


def test_maintenance_info_conflict_is_422(osb: OsbClient) -> None:
    sid, pid = _noop(osb)
    iid = new_id()
    resp = osb.provision(iid, sid, pid, {}, maintenance_info={"version": "0.0.1-old"})
    assert resp.status_code == 422
    assert resp.json()["error"] == "MaintenanceInfoConflict"
    assert osb.last_operation(iid).status_code == 404


def test_update_while_another_operation_runs_is_422_concurrency(osb: OsbClient) -> None:
    sid, pid = _noop(osb, "async")
    iid = new_id()
    osb.provision(iid, sid, pid, {})
    osb.wait(iid)
    first = osb.update(iid, {"service_id": sid, "parameters": {"steps": 40, "step_seconds": 0.1}})
    assert first.status_code == 202
    second = osb.update(iid, {"service_id": sid, "parameters": {"steps": 1}})
    assert second.status_code == 422
    assert second.json()["error"] == "ConcurrencyError"
    assert osb.http.get(f"/v2/service_instances/{iid}").status_code == 422


def test_invalid_parameters_are_400_naming_the_parameter(osb: OsbClient) -> None:
    sid, pid = _noop(osb)
    iid = new_id()
    resp = osb.provision(iid, sid, pid, {"steps": -3})
    assert resp.status_code == 400
    assert "steps" in resp.json()["description"]
    unknown = osb.provision(iid, sid, pid, {"colour": "blue"})
    assert unknown.status_code == 400
    assert "colour" in unknown.json()["description"]
    assert osb.last_operation(iid).status_code == 404
