"""The gaps of openbrokerapi listed in RULES.md §7, each closed and checked over HTTP.

Also: authentication on every route, malformed input answered 4xx with an OSB error
body (never 500), oversized bodies 413, and the catalog as platforms see it.
"""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.broker import PASSWORD, OsbClient, RunningBroker, new_id

ROUTES = [
    ("GET", "/v2/catalog"),
    ("PUT", "/v2/service_instances/x"),
    ("PATCH", "/v2/service_instances/x"),
    ("DELETE", "/v2/service_instances/x?service_id=a&plan_id=b"),
    ("GET", "/v2/service_instances/x"),
    ("GET", "/v2/service_instances/x/last_operation"),
    ("PUT", "/v2/service_instances/x/service_bindings/y"),
    ("DELETE", "/v2/service_instances/x/service_bindings/y?service_id=a&plan_id=b"),
    ("GET", "/v2/service_instances/x/service_bindings/y"),
    ("GET", "/v2/service_instances/x/service_bindings/y/last_operation"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_basic_auth_before_anything_else(
    broker: RunningBroker, method: str, path: str
) -> None:
    # No version header either: auth must be checked first (RULES §7 row 3).
    anonymous = httpx.request(method, broker.url + path, json={})
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    wrong = httpx.request(
        method,
        broker.url + path,
        json={},
        auth=("moorage", PASSWORD + "x"),
        headers={"X-Broker-API-Version": "2.17"},
    )
    assert wrong.status_code == 401


def test_version_header_missing_400_old_412_garbage_400(broker: RunningBroker) -> None:
    auth = ("moorage", PASSWORD)
    assert httpx.get(broker.url + "/v2/catalog", auth=auth).status_code == 400
    old = httpx.get(broker.url + "/v2/catalog", auth=auth, headers={"X-Broker-API-Version": "2.11"})
    assert old.status_code == 412 and "2.17" in old.json()["description"]
    garbage = httpx.get(broker.url + "/v2/catalog", auth=auth, headers={"X-Broker-API-Version": "two"})
    assert garbage.status_code == 400


def test_request_identity_is_echoed(osb: OsbClient) -> None:
    resp = osb.http.get("/v2/catalog", headers={"X-Broker-API-Request-Identity": "req-42"})
    assert resp.headers["X-Broker-API-Request-Identity"] == "req-42"


def test_catalog_shows_osb_fields_and_hides_provider_internals(osb: OsbClient) -> None:
    service = next(s for s in osb.catalog()["services"] if s["name"] == "noop")
    assert service["instances_retrievable"] is True and service["bindings_retrievable"] is True
    for plan in service["plans"]:
        assert {"id", "name", "description"} <= set(plan)
        assert "config" not in plan and "asynchronous" not in plan
        for schema in (plan.get("schemas") or {}).get("service_instance", {}).values():
            assert "$schema" in schema["parameters"]
    assert "provider" not in service and "credentials_env" not in service


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b.pop("service_id"), "service_id"),
        (lambda b: b.update(service_id=""), "service_id"),
        (lambda b: b.update(service_id=new_id()), "service_id"),
        (lambda b: b.update(plan_id=new_id()), "plan_id"),
        (lambda b: b.update(organization_guid=""), "organization_guid"),
        (lambda b: b.update(space_guid="  "), "space_guid"),
        (lambda b: b.pop("space_guid"), "space_guid"),
        (lambda b: b.update(parameters=[1, 2]), "parameters"),
        (lambda b: b.update(context="cf"), "context"),
    ],
)
def test_bad_provision_bodies_are_400_and_create_nothing(osb: OsbClient, mutate, needle: str) -> None:
    sid, pid = osb.ids("noop", "sync")
    body = {"service_id": sid, "plan_id": pid, "organization_guid": "o", "space_guid": "s"}
    mutate(body)
    iid = new_id()
    resp = osb.http.put(f"/v2/service_instances/{iid}", json=body)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["description"]
    assert osb.last_operation(iid).status_code == 404


def test_plan_of_another_offering_is_400(make_broker) -> None:
    from tests.fixtures.broker import MAIN_CATALOG, TEST_CATALOG

    broker = make_broker([TEST_CATALOG, MAIN_CATALOG])
    osb = broker.client
    services = osb.catalog()["services"]
    noop = next(s for s in services if s["name"] == "noop")
    other = next(s for s in services if s["name"] != "noop")
    resp = osb.provision(new_id(), noop["id"], other["plans"][0]["id"], {})
    assert resp.status_code == 400
    assert "not a plan of service" in resp.json()["description"]


def test_malformed_json_and_wrong_content_type_are_400(osb: OsbClient) -> None:
    bad = osb.http.put(
        f"/v2/service_instances/{new_id()}",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400 and "JSON" in bad.json()["description"]
    text = osb.http.put(
        f"/v2/service_instances/{new_id()}", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert text.status_code == 400 and "Content-Type" in text.json()["description"]
    array = osb.http.put(f"/v2/service_instances/{new_id()}", json=[1])
    assert array.status_code == 400


def test_deeply_nested_body_is_400_not_500(osb: OsbClient) -> None:
    sid, pid = osb.ids("noop", "sync")
    prefix = f'{{"service_id":"{sid}","plan_id":"{pid}","organization_guid":"o","space_guid":"s","parameters":{{"x":'
    for depth in (100, 1200, 100_000):  # past the limit; past Python's recursion limit; far past it
        iid = new_id()
        body = prefix + "[" * depth + "]" * depth + "}}"
        resp = osb.http.put(
            f"/v2/service_instances/{iid}",
            content=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert resp.status_code == 400, (depth, resp.text)
        assert "nested too deeply (at most 64 levels)" in resp.json()["description"]
        assert osb.last_operation(iid).status_code == 404
    patched = osb.http.patch(
        f"/v2/service_instances/{new_id()}",
        content=("[" * 5000 + "]" * 5000).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert patched.status_code == 400 and "nested too deeply" in patched.json()["description"]


def test_moderately_nested_parameters_are_still_accepted(osb: OsbClient) -> None:
    """The depth limit must not refuse ordinary documents: 60 levels inside a body pass."""
    sid, pid = osb.ids("noop", "sync")
    nested: object = []
    for _ in range(58):
        nested = [nested]
    resp = osb.http.put(
        f"/v2/service_instances/{new_id()}",
        json={
            "service_id": sid,
            "plan_id": pid,
            "organization_guid": "o",
            "space_guid": "s",
            "parameters": {"x": nested},
        },
    )
    # The body is accepted by the JSON checks; the plan's schema then refuses the unknown key.
    assert resp.status_code == 400
    assert resp.json()["description"].startswith("invalid parameters"), resp.text


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_nan_and_infinity_are_400_and_create_nothing(osb: OsbClient, constant: str) -> None:
    sid, pid = osb.ids("noop", "sync")
    iid = new_id()
    body = (
        f'{{"service_id":"{sid}","plan_id":"{pid}","organization_guid":"o","space_guid":"s",'
        f'"parameters":{{"step_seconds":{constant}}}}}'
    )
    resp = osb.http.put(
        f"/v2/service_instances/{iid}", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    description = resp.json()["description"]
    assert "NaN/Infinity are not JSON" in description or "too large for a number" in description
    assert osb.http.get(f"/v2/service_instances/{iid}").status_code == 404
    assert osb.last_operation(iid).status_code == 404


def test_oversized_body_is_413(osb: OsbClient) -> None:
    sid, pid = osb.ids("noop", "sync")
    huge = {
        "service_id": sid,
        "plan_id": pid,
        "organization_guid": "o",
        "space_guid": "s",
        "parameters": {"fail": "x" * (1024 * 1024 + 10)},
    }
    resp = osb.http.put(f"/v2/service_instances/{new_id()}", json=huge)
    assert resp.status_code == 413
    assert "larger than" in resp.json()["description"]


def test_delete_without_query_ids_is_400(osb: OsbClient) -> None:
    resp = osb.http.delete(f"/v2/service_instances/{new_id()}")
    assert resp.status_code == 400
    assert "service_id" in resp.json()["description"]


def test_invalid_id_characters_are_400(osb: OsbClient) -> None:
    sid, pid = osb.ids("noop", "sync")
    resp = osb.provision("bad%20id", sid, pid, {})
    assert resp.status_code == 400


def test_unsupported_plan_change_is_422(make_broker, tmp_path) -> None:
    """An offering whose plans are not updateable refuses a plan change with 422 (not 400)."""
    import yaml

    from tests.fixtures.broker import TEST_CATALOG

    data = yaml.safe_load((TEST_CATALOG / "noop.yaml").read_text())
    data.update(name="noop-fixed", id=new_id(), plan_updateable=False)
    for plan in data["plans"]:
        plan["id"] = new_id()
        plan.pop("plan_updateable", None)
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "fixed.yaml").write_text(yaml.safe_dump(data))
    osb = make_broker([folder]).client
    sid, pid = osb.ids("noop-fixed", "sync")
    _, other = osb.ids("noop-fixed", "no-maintenance")
    iid = new_id()
    assert osb.provision(iid, sid, pid, {}).status_code == 201
    resp = osb.update(iid, {"service_id": sid, "plan_id": other})
    assert resp.status_code == 422
    assert "cannot be changed" in resp.json()["description"]
    assert osb.http.get(f"/v2/service_instances/{iid}").json()["plan_id"] == pid


def test_unknown_route_is_404_json(osb: OsbClient) -> None:
    resp = osb.http.get("/v2/nothing-here")
    assert resp.status_code == 404
    assert resp.json()["description"]


def test_catalog_has_an_etag_and_answers_304_when_unchanged(osb: OsbClient) -> None:
    first = osb.http.get("/v2/catalog")
    etag = first.headers["ETag"]
    again = osb.http.get("/v2/catalog", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other = osb.http.get("/v2/catalog", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.json() == first.json()


def test_gunicorn_serves_the_whole_catalog_from_its_file_and_without_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The production server sends the pre-serialised catalog with sendfile(); a missing
    file (another broker on the same data dir replaced it) falls back to memory."""
    from moorage.catalog.loader import load_catalog
    from tests.fixtures.broker import BrokerProcess, broker_settings, settings_env

    settings = broker_settings(tmp_path / "state")
    process = BrokerProcess(settings, settings_env(settings))
    process.start()
    osb = OsbClient(process.url)
    try:
        expected = load_catalog(settings.catalog_dirs).to_osb()
        first = osb.http.get("/v2/catalog")
        assert first.status_code == 200 and first.json() == expected
        assert int(first.headers["Content-Length"]) == len(first.content)
        copies = list(settings.data_dir.glob("catalog-*.json"))
        assert [c.read_bytes() for c in copies] == [first.content]
        copies[0].unlink()
        again = osb.http.get("/v2/catalog")
        assert again.status_code == 200 and again.content == first.content
        assert again.headers["ETag"] == first.headers["ETag"]
    finally:
        osb.close()
        process.stop()
