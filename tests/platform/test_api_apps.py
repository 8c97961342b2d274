"""Apps, sharing and domains through the real HTTP API: names, isolation, 404 for others.

Names, permissions and the domain list are the controller's own bookkeeping, so the
controller runs on ``InertRuntime``; domains routed by the real router are in
``test_runtime_local.py`` and ``test_cli_end_to_end.py``.
"""

from __future__ import annotations

import pytest

from tests.fixtures.platform import deploy_tarball, tar_of

PROCFILE_APP = {"Procfile": "web: python3 server.py\nworker: python3 worker.py\n", "server.py": "print(1)\n"}


def test_create_list_info_destroy(controller, inert_runtime):
    alice = controller.user("alice")
    r = alice.post("/v2/apps", json={"id": "shop"})
    assert r.status_code == 201
    assert r.json()["id"] == "shop" and r.json()["owner"] == "alice"
    assert r.json()["url"].startswith("http://shop.moorage.localhost")
    generated = alice.post("/v2/apps").json()["id"]
    assert generated.count("-") >= 1
    assert [a["id"] for a in alice.get("/v2/apps").json()["results"]] == sorted(["shop", generated])
    assert alice.get("/v2/apps/shop").json()["owner"] == "alice"
    assert alice.delete("/v2/apps/shop").status_code == 204
    assert alice.get("/v2/apps/shop").status_code == 404
    assert ("shop", "destroy") in inert_runtime.events
    assert alice.post("/v2/apps", json={"id": "shop"}).status_code == 201  # the name is free again


@pytest.mark.parametrize(
    "name", ["Shop", "-shop", "shop-", "1shop", "sh op", "a" * 64, "shop_1", "moorage", 7]
)
def test_invalid_app_names_are_refused(controller, name):
    alice = controller.user("alice")
    r = alice.post("/v2/apps", json={"id": name})
    assert r.status_code == 400
    assert "app name" in r.json()["message"]
    assert alice.get("/v2/apps").json()["results"] == []


def test_duplicate_app_name_conflicts(controller):
    alice, bob = controller.user("alice"), controller.user("bob")
    alice.post("/v2/apps", json={"id": "shop"})
    r = bob.post("/v2/apps", json={"id": "shop"})
    assert r.status_code == 409 and "already exists" in r.json()["message"]


def test_another_users_app_is_404_for_everything(controller, inert_runtime):
    alice, bob, mallory = controller.user("alice"), controller.user("bob"), controller.user("mallory")
    alice.post("/v2/apps", json={"id": "shop"})
    bob_only = bob.post("/v2/apps", json={"id": "bobs"}).json()["id"]
    deploy_tarball(bob, bob_only, tar_of(PROCFILE_APP))
    attempts = [
        ("GET", "/v2/apps/bobs", None),
        ("DELETE", "/v2/apps/bobs", None),
        ("GET", "/v2/apps/bobs/config", None),
        ("POST", "/v2/apps/bobs/config", {"values": {"X": "1"}}),
        ("GET", "/v2/apps/bobs/releases", None),
        ("GET", "/v2/apps/bobs/releases/v1", None),
        ("POST", "/v2/apps/bobs/releases/rollback", {}),
        ("POST", "/v2/apps/bobs/scale", {"web": 2}),
        ("GET", "/v2/apps/bobs/pods", None),
        ("POST", "/v2/apps/bobs/pods/restart", None),
        ("GET", "/v2/apps/bobs/logs", None),
        ("POST", "/v2/apps/bobs/run", {"command": "id"}),
        ("GET", "/v2/apps/bobs/domains", None),
        ("POST", "/v2/apps/bobs/domains", {"domain": "evil.example.com"}),
        ("GET", "/v2/apps/bobs/perms", None),
        ("POST", "/v2/apps/bobs/perms", {"username": "mallory"}),
        ("GET", "/v2/apps/bobs/builds", None),
    ]
    for method, path, body in attempts:
        r = mallory.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["message"] == "no app named 'bobs'; see `moorage apps` for yours"
    # the same answer as a name that does not exist at all
    assert mallory.get("/v2/apps/nothere").json()["message"].startswith("no app named 'nothere'")
    assert deploy_tarball(mallory, "bobs", tar_of(PROCFILE_APP))[0]["status"] == 404
    assert [a["id"] for a in mallory.get("/v2/apps").json()["results"]] == []
    # nothing changed for bob
    assert bob.get("/v2/apps/bobs/config").json()["values"] == {}
    assert len(bob.get("/v2/apps/bobs/releases").json()["results"]) == 2
    assert inert_runtime.formations["bobs"] == {"web": 1}
    # the admin (alice, the first user) sees everything
    assert {a["id"] for a in alice.get("/v2/apps").json()["results"]} == {"shop", "bobs"}
    assert alice.get("/v2/apps/bobs").status_code == 200


def test_sharing_gives_a_collaborator_access(controller):
    controller.user("root")  # the admin
    alice, bob, carol = controller.user("alice"), controller.user("bob"), controller.user("carol")
    alice.post("/v2/apps", json={"id": "shop"})
    assert bob.get("/v2/apps/shop").status_code == 404
    assert alice.post("/v2/apps/shop/perms", json={"username": "bob"}).status_code == 201
    assert alice.get("/v2/apps/shop/perms").json() == {"users": ["bob"]}
    assert bob.get("/v2/apps/shop").status_code == 200
    assert [a["id"] for a in bob.get("/v2/apps").json()["results"]] == ["shop"]
    assert bob.post("/v2/apps/shop/config", json={"values": {"A": "1"}}).status_code == 201
    # a collaborator may not share further nor destroy
    r = bob.post("/v2/apps/shop/perms", json={"username": "carol"})
    assert r.status_code == 403 and "only the owner" in r.json()["message"]
    assert bob.delete("/v2/apps/shop").status_code == 403
    assert carol.get("/v2/apps/shop").status_code == 404
    r = alice.post("/v2/apps/shop/perms", json={"username": "nobody"})
    assert r.status_code == 400 and "no user named" in r.json()["message"]
    assert alice.post("/v2/apps/shop/perms", json={"username": "bob"}).status_code == 409
    assert alice.delete("/v2/apps/shop/perms/bob").status_code == 204
    assert bob.get("/v2/apps/shop").status_code == 404


def test_domains_are_validated_and_globally_unique(controller, inert_runtime):
    alice, bob = controller.user("alice"), controller.user("bob")
    alice.post("/v2/apps", json={"id": "shop"})
    bob.post("/v2/apps", json={"id": "blog"})
    r = alice.post("/v2/apps/shop/domains", json={"domain": "WWW.Example.com."})
    assert r.status_code == 201 and r.json() == {"domain": "www.example.com"}
    assert inert_runtime.domains["shop"] == ["www.example.com"]
    r = bob.post("/v2/apps/blog/domains", json={"domain": "www.example.com"})
    assert r.status_code == 409 and "already in use" in r.json()["message"]
    for bad in [
        "localhost",
        "exa mple.com",
        "-a.example.com",
        "a..b.com",
        "*.*.example.com",
        "x" * 64 + ".com",
        "a.invalid",
        "app.localhost",
        "1.2.3.4",
    ]:
        r = alice.post("/v2/apps/shop/domains", json={"domain": bad})
        assert r.status_code == 400 and "invalid domain" in r.json()["message"], bad
    r = bob.post("/v2/apps/blog/domains", json={"domain": "shop.moorage.localhost"})
    assert r.status_code == 400 and "base domain" in r.json()["message"]
    # A wildcard may not take a whole top-level domain, nor cover the base domain's names.
    r = bob.post("/v2/apps/blog/domains", json={"domain": "*.com"})
    assert r.status_code == 400 and "top-level domain" in r.json()["message"]
    r = bob.post("/v2/apps/blog/domains", json={"domain": "*.localhost"})
    assert r.status_code == 400
    assert alice.post("/v2/apps/shop/domains", json={"domain": "*.shop.example.com"}).status_code == 201
    assert alice.get("/v2/apps/shop/domains").json()["results"] == ["www.example.com", "*.shop.example.com"]
    assert alice.delete("/v2/apps/shop/domains/www.example.com").status_code == 204
    assert alice.delete("/v2/apps/shop/domains/www.example.com").status_code == 404
    assert inert_runtime.domains["shop"] == ["*.shop.example.com"]
    assert bob.post("/v2/apps/blog/domains", json={"domain": "www.example.com"}).status_code == 201
