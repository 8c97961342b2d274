"""Accounts and tokens through the real HTTP API.

Accounts are the controller's own bookkeeping: where a test starts a controller of its
own, it runs on ``InertRuntime`` (no processes), since no app is deployed.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from moorage.store.apps import Token
from moorage.store.db import Database
from tests.fixtures.platform import InertRuntime, serve_controller

PROTECTED = [
    ("GET", "/v2/apps"),
    ("POST", "/v2/apps"),
    ("GET", "/v2/apps/x"),
    ("DELETE", "/v2/apps/x"),
    ("GET", "/v2/apps/x/config"),
    ("POST", "/v2/apps/x/config"),
    ("GET", "/v2/apps/x/builds"),
    ("POST", "/v2/apps/x/builds"),
    ("GET", "/v2/apps/x/releases"),
    ("GET", "/v2/apps/x/releases/v1"),
    ("POST", "/v2/apps/x/releases/rollback"),
    ("POST", "/v2/apps/x/scale"),
    ("GET", "/v2/apps/x/pods"),
    ("POST", "/v2/apps/x/pods/restart"),
    ("POST", "/v2/apps/x/pods/web/restart"),
    ("GET", "/v2/apps/x/logs"),
    ("POST", "/v2/apps/x/run"),
    ("GET", "/v2/apps/x/domains"),
    ("POST", "/v2/apps/x/domains"),
    ("DELETE", "/v2/apps/x/domains/a.example.com"),
    ("GET", "/v2/apps/x/perms"),
    ("POST", "/v2/apps/x/perms"),
    ("DELETE", "/v2/apps/x/perms/bob"),
    ("GET", "/v2/auth/whoami"),
    ("POST", "/v2/auth/tokens"),
]


def test_health_checks_need_no_token(controller):
    anon = controller.client()
    assert anon.get("/healthz").json() == {"status": "ok"}
    assert anon.get("/readiness").json() == {"status": "ready"}


def test_every_route_needs_a_valid_token(controller):
    alice = controller.user("alice")  # a user and an app exist, so the token is the only problem
    assert alice.post("/v2/apps", json={"id": "x"}).status_code == 201
    for method, path in PROTECTED:
        for client in (controller.client(), controller.client("not-a-real-token")):
            r = client.request(method, path, json={})
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["code"] == "unauthorized"
            assert r.json()["message"]
    assert alice.get("/v2/apps/x").status_code == 200


def test_first_user_is_admin_and_login_gives_a_working_token(controller):
    anon = controller.client()
    r = anon.post("/v2/auth/register", json={"username": "alice", "password": "correct-horse"})
    assert r.status_code == 201 and r.json() == {"username": "alice", "is_admin": True}
    r = anon.post("/v2/auth/register", json={"username": "bob", "password": "correct-horse"})
    assert r.json() == {"username": "bob", "is_admin": False}
    token = anon.post("/v2/auth/login", json={"username": "bob", "password": "correct-horse"}).json()["token"]
    assert controller.client(token).get("/v2/auth/whoami").json() == {"username": "bob", "is_admin": False}


def test_wrong_password_and_duplicate_names_are_refused(controller):
    controller.user("alice")
    anon = controller.client()
    r = anon.post("/v2/auth/login", json={"username": "alice", "password": "wrong-password"})
    assert r.status_code == 401 and "wrong username or password" in r.json()["message"]
    r = anon.post("/v2/auth/login", json={"username": "nobody", "password": "wrong-password"})
    assert r.status_code == 401
    r = anon.post("/v2/auth/register", json={"username": "alice", "password": "another-one"})
    assert r.status_code == 409 and "already taken" in r.json()["message"]


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"username": "Bad Name", "password": "correct-horse"}, "invalid username"),
        ({"username": "carol", "password": "short"}, "at least 8"),
        ({"password": "correct-horse"}, "invalid username"),
    ],
)
def test_bad_registrations_are_refused(controller, body, fragment):
    r = controller.client().post("/v2/auth/register", json=body)
    assert r.status_code == 400 and fragment in r.json()["message"]
    assert (
        controller.client()
        .post("/v2/auth/login", json={"username": "carol", "password": "short"})
        .status_code
        == 401
    )


def test_closed_registration_lets_only_admins_add_users(platform_settings):
    settings = dataclasses.replace(
        platform_settings, platform=dataclasses.replace(platform_settings.platform, allow_registration=False)
    )
    with serve_controller(settings, InertRuntime()) as ctl:
        admin = ctl.user("root")  # the first user may always register
        r = ctl.client().post("/v2/auth/register", json={"username": "eve", "password": "correct-horse"})
        assert r.status_code == 403 and "registration is closed" in r.json()["message"]
        r = admin.post("/v2/auth/register", json={"username": "eve", "password": "correct-horse"})
        assert r.status_code == 201


def test_regenerating_revokes_old_tokens_and_only_hashes_are_stored(controller, platform_settings):
    alice = controller.user("alice")
    old = alice.headers["Authorization"].split()[1]
    r = alice.post("/v2/auth/tokens")
    new = r.json()["token"]
    assert new != old
    assert alice.get("/v2/auth/whoami").status_code == 401
    fresh = controller.client(new)
    assert fresh.get("/v2/auth/whoami").json()["username"] == "alice"
    db = Database(platform_settings.state_url)
    with db.unit_of_work() as s:
        stored = list(s.scalars(select(Token.token_hash)))
    db.dispose()
    assert new not in stored and len(stored) == 1
    assert fresh.post("/v2/auth/logout").status_code == 204
    assert fresh.get("/v2/auth/whoami").status_code == 401


def test_errors_have_one_json_shape(controller):
    r = controller.client().get("/v2/no/such/route")
    assert r.status_code == 404
    assert set(r.json()) == {"code", "message", "details"}


@pytest.mark.parametrize(
    "raw,fragment",
    [
        (b"{not json", "must be a JSON object"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"username": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    ],
    ids=["malformed", "array", "deeply-nested"],
)
def test_malformed_bodies_are_400_and_register_no_one(controller, raw, fragment):
    client = controller.client()
    r = client.post("/v2/auth/register", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and fragment in r.json()["message"], r.text
    first = client.post("/v2/auth/register", json={"username": "dana", "password": "correct-horse"})
    assert first.json()["is_admin"] is True, "no one was registered before"
