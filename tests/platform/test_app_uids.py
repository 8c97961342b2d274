"""App uids live on the app's row: handed out once, never again, and carried to the runtime.

These are about the controller's own bookkeeping (which uid an app has, on real SQLite
and PostgreSQL state databases), so the runtime here is ``InertRuntime``, which records
the ``ReleaseSpec`` it is given. That uids really isolate apps is shown on the real
runtime in ``test_app_isolation.py``.
"""

from __future__ import annotations

import json
import pwd
import threading
from pathlib import Path

from sqlalchemy import create_engine, select, text

from moorage.platform.controller import app_uids
from moorage.store.apps import App, AppUid
from moorage.store.db import Database
from moorage.store.migrate import alembic_config, upgrade
from tests.fixtures.platform import InertRuntime, deploy_tarball, serve_controller, tar_of

APP = tar_of({"Procfile": "web: python3 -m http.server $PORT\n"})


def rows(ctl) -> dict[str, int | None]:  # type: ignore[no-untyped-def]
    platform = ctl.flask_app.extensions["moorage.platform"]
    with platform.db.sessions() as s:
        return {a.name: a.uid for a in s.scalars(select(App))}


def test_each_app_gets_its_own_uid_and_a_recreated_name_gets_a_new_one(platform_settings, inert_runtime):
    with serve_controller(platform_settings, inert_runtime) as ctl:
        alice, bob = ctl.user("alice"), ctl.user("bob")
        for name in ("shop", "blog"):
            assert alice.post("/v2/apps", json={"id": name}).status_code == 201
        first = rows(ctl)
        assert first["shop"] != first["blog"] and min(first.values()) >= app_uids.FIRST_UID  # type: ignore[type-var]
        for uid in first.values():
            assert uid is not None
            try:
                pwd.getpwuid(uid)
            except KeyError:
                continue
            raise AssertionError(f"uid {uid} belongs to an account")

        # The runtime is told the uid with every release.
        assert "result" in deploy_tarball(alice, "shop", APP)[-1]
        assert inert_runtime.deployed["shop"].uid == first["shop"]

        # Destroyed, then re-created by someone else: a uid above every one handed out.
        assert alice.delete("/v2/apps/shop").status_code == 204
        assert bob.post("/v2/apps", json={"id": "shop"}).status_code == 201
        again = rows(ctl)
        assert again["shop"] > max(first.values())  # type: ignore[type-var,operator]
        assert again["blog"] == first["blog"]
        platform = ctl.flask_app.extensions["moorage.platform"]
        with platform.db.sessions() as s:
            ledger = {r.uid: (r.app, r.freed_at is not None) for r in s.scalars(select(AppUid))}
        assert ledger == {
            first["shop"]: ("shop", True),
            first["blog"]: ("blog", False),
            again["shop"]: ("shop", False),
        }


def test_controllers_creating_apps_at_once_on_postgresql_never_share_a_uid(postgres_database):
    upgrade(postgres_database)
    dbs = [Database(postgres_database), Database(postgres_database)]  # two controllers
    got: list[int] = []
    start = threading.Barrier(8)

    def allocate(worker: int) -> None:
        start.wait()
        for i in range(10):
            with dbs[worker % 2].unit_of_work() as s:
                got.append(app_uids.allocate(s, f"app-{worker}-{i}"))

    threads = [threading.Thread(target=allocate, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for db in dbs:
        db.dispose()
    assert len(got) == 80
    assert len(set(got)) == 80, "two apps were given the same uid"
    assert min(got) >= app_uids.FIRST_UID


def test_apps_made_before_uids_were_on_their_row_keep_the_uid_of_the_old_table(platform_settings):
    """An upgrade: the JSON table is imported (gone apps' uids too, so none is handed out again)."""
    data_dir: Path = platform_settings.data_dir
    data_dir.mkdir(parents=True)
    url = platform_settings.state_url
    from alembic import command

    command.upgrade(alembic_config(url), "0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO platform_users (id, username, email, password_hash, is_admin, created_at) "
                "VALUES (1, 'old', '', 'x', 0, '2026-01-01 00:00:00')"
            )
        )
        for i, name in enumerate(("kept", "unlisted"), start=1):
            conn.execute(
                text(
                    "INSERT INTO platform_apps (id, name, owner_id, created_at, updated_at) "
                    "VALUES (:id, :name, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                {"id": i, "name": name},
            )
    engine.dispose()
    legacy = data_dir / "run" / "app-uids.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"kept": 40003, "destroyed-long-ago": 40007}))

    with serve_controller(platform_settings, InertRuntime(), resume=False) as ctl:  # rows without releases
        got = rows(ctl)
        assert got["kept"] == 40003
        assert got["unlisted"] is not None and got["unlisted"] > 40007
        alice = ctl.user("alice")
        assert alice.post("/v2/apps", json={"id": "destroyed-long-ago"}).status_code == 201
        assert rows(ctl)["destroyed-long-ago"] > got["unlisted"]
    assert not legacy.exists() and (data_dir / "run" / "app-uids.json.imported").exists()
