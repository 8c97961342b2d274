"""The platform's state at rest: the migration matches the models, secrets are not in clear.

Only the state database is looked at, so the controller runs on ``InertRuntime``.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from moorage.store.apps import ConfigVars
from moorage.store.base import Base
from moorage.store.db import Database
from moorage.store.migrate import upgrade


def test_migration_creates_exactly_the_platform_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    db = Database(url)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    platform_diff = [d for d in diff if "platform_" in repr(d)]
    assert platform_diff == []
    assert ConfigVars.__tablename__ == "platform_configs"


def test_config_values_are_encrypted_at_rest(controller, platform_settings):
    alice = controller.user("alice")
    alice.post("/v2/apps", json={"id": "shop"})
    secret = "postgres://u:s3cr3t-value@db/x"
    assert alice.post("/v2/apps/shop/config", json={"values": {"DATABASE_URL": secret}}).status_code == 201
    raw = b"".join(p.read_bytes() for p in platform_settings.data_dir.glob("moorage.db*"))
    assert b"s3cr3t-value" not in raw and b"correct-horse" not in raw
    assert alice.get("/v2/apps/shop/config").json()["values"]["DATABASE_URL"] == secret


def test_the_ledger_works_on_postgresql(postgres_database, tmp_path):
    import dataclasses

    from tests.fixtures.platform import (
        InertRuntime,
        deploy_tarball,
        platform_settings_for,
        serve_controller,
        tar_of,
    )

    settings = dataclasses.replace(platform_settings_for(tmp_path / "data"), database_url=postgres_database)
    runtime = InertRuntime()
    with serve_controller(settings, runtime) as ctl:
        alice, bob = ctl.user("alice"), ctl.user("bob")
        alice.post("/v2/apps", json={"id": "shop"})
        alice.post("/v2/apps/shop/config", json={"values": {"A": "1"}})
        lines = deploy_tarball(alice, "shop", tar_of({"Procfile": "web: python3 x.py\n"}))
        assert lines[-1]["result"]["version"] == 3
        alice.post("/v2/apps/shop/config", json={"values": {"A": "2"}})
        assert (
            alice.post("/v2/apps/shop/releases/rollback").json()["release"]["summary"]
            == "alice rolled back to v3"
        )
        assert runtime.deployed["shop"].env["A"] == "1"
        alice.post("/v2/apps/shop/perms", json={"username": "bob"})
        alice.post("/v2/apps/shop/domains", json={"domain": "shop.example.com"})
        assert bob.get("/v2/apps/shop/releases").json()["results"][0]["version"] == 5
        assert alice.delete("/v2/apps/shop").status_code == 204
        assert alice.get("/v2/apps").json()["results"] == []
        alice.post("/v2/apps", json={"id": "shop"})
        assert len(alice.get("/v2/apps/shop/releases").json()["results"]) == 1
