"""Binding and unbinding over HTTP: status codes, fetch, rotation, async credentials."""

from __future__ import annotations

from tests.fixtures.broker import OsbClient, new_id


def _instance(osb: OsbClient, plan: str = "sync") -> tuple[str, str, str]:
    sid, pid = osb.ids("noop", plan)
    iid = new_id()
    resp = osb.provision(iid, sid, pid, {})
    assert resp.status_code == (202 if plan == "async" else 201), resp.text
    osb.wait(iid)
    return iid, sid, pid


def test_bind_201_identical_200_conflict_409_unbind_200_then_410(osb: OsbClient) -> None:
    iid, sid, pid = _instance(osb)
    bid = new_id()
    created = osb.bind(iid, bid, sid, pid, {})
    assert created.status_code == 201, created.text
    creds = created.json()["credentials"]
    assert creds["username"] and creds["password"]
    again = osb.bind(iid, bid, sid, pid, {})
    assert again.status_code == 200
    assert again.json()["credentials"] == creds
    assert osb.bind(iid, bid, sid, pid, {"steps": 2}).status_code == 409
    fetched = osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}")
    assert fetched.status_code == 200 and fetched.json()["credentials"] == creds
    assert osb.unbind(iid, bid, sid, pid).status_code == 200
    assert osb.unbind(iid, bid, sid, pid).status_code == 410
    assert osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}").status_code == 404


def test_every_binding_gets_its_own_credentials(osb: OsbClient) -> None:
    iid, sid, pid = _instance(osb)
    first = osb.bind(iid, new_id(), sid, pid).json()["credentials"]
    second = osb.bind(iid, new_id(), sid, pid).json()["credentials"]
    assert first["username"] != second["username"]
    assert first["password"] != second["password"]


def test_async_bind_has_no_credentials_in_202_but_fetch_returns_them(osb: OsbClient) -> None:
    iid, sid, pid = _instance(osb, "async")
    bid = new_id()
    resp = osb.bind(iid, bid, sid, pid, {"steps": 2, "step_seconds": 0.1})
    assert resp.status_code == 202
    assert "credentials" not in resp.json()
    assert osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}").status_code == 404
    done = osb.wait(iid, bid, operation=resp.json()["operation"])
    assert done.json()["state"] == "succeeded"
    fetched = osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}")
    assert fetched.status_code == 200
    assert fetched.json()["credentials"]["password"]


def test_async_unbind_polls_to_410(osb: OsbClient) -> None:
    iid, sid, pid = _instance(osb, "async")
    bid = new_id()
    osb.bind(iid, bid, sid, pid, {})
    osb.wait(iid, bid)
    resp = osb.unbind(iid, bid, sid, pid)
    assert resp.status_code == 202  # an async plan unbinds in the background
    assert osb.wait(iid, bid).status_code == 410


def test_binding_last_operation_for_unknown_binding_is_404(osb: OsbClient) -> None:
    iid, _, _ = _instance(osb)
    assert osb.last_operation(iid, new_id()).status_code == 404


def test_deprovision_refused_while_bound(osb: OsbClient) -> None:
    iid, sid, pid = _instance(osb)
    bid = new_id()
    osb.bind(iid, bid, sid, pid)
    resp = osb.deprovision(iid, sid, pid)
    assert resp.status_code == 400
    assert "unbind" in resp.json()["description"]
    assert osb.http.get(f"/v2/service_instances/{iid}").status_code == 200
    osb.unbind(iid, bid, sid, pid)
    assert osb.deprovision(iid, sid, pid).status_code == 200


def test_bind_to_unknown_instance_is_400(osb: OsbClient) -> None:
    sid, pid = osb.ids("noop", "sync")
    resp = osb.bind(new_id(), new_id(), sid, pid)
    assert resp.status_code == 400
    assert "does not exist" in resp.json()["description"]


def test_rotation_is_refused_on_a_plan_without_binding_rotatable(osb: OsbClient) -> None:
    iid, sid, pid = _instance(osb)
    plan = next(p for s in osb.catalog()["services"] if s["id"] == sid for p in s["plans"] if p["id"] == pid)
    assert not plan.get("binding_rotatable")
    old = new_id()
    osb.bind(iid, old, sid, pid)
    rotated = osb.bind(iid, new_id(), sid, pid, predecessor_binding_id=old)
    assert rotated.status_code == 400
    assert "rotation" in rotated.json()["description"]


def test_failed_unbind_is_422_and_binding_still_works(osb: OsbClient) -> None:
    iid, sid, pid = _instance(osb)
    bid = new_id()
    osb.bind(iid, bid, sid, pid, {"fail_delete": "the user still has sessions"})
    resp = osb.unbind(iid, bid, sid, pid, accepts_incomplete=False)
    assert resp.status_code == 422
    assert "still has sessions" in resp.json()["description"]
    assert osb.http.get(f"/v2/service_instances/{iid}/service_bindings/{bid}").status_code == 200


def test_bind_while_the_instance_is_being_deleted_is_422_concurrency(osb: OsbClient) -> None:
    iid, sid, pid = _instance(osb, "async")
    # A slow deprovision (20 steps of 0.1 s).
    slow = {"delete_steps": 20, "step_seconds": 0.1}
    assert osb.update(iid, {"service_id": sid, "parameters": slow}).status_code == 202
    assert osb.wait(iid).json()["state"] == "succeeded"
    deleting = osb.deprovision(iid, sid, pid)
    assert deleting.status_code == 202
    resp = osb.bind(iid, new_id(), sid, pid, {})
    assert resp.status_code == 422 and resp.json()["error"] == "ConcurrencyError"
    assert osb.wait(iid).status_code == 410
