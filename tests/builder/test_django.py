"""A Django app declared in pyproject.toml: collectstatic, a release task, DATABASE_URL."""

from __future__ import annotations

import os
import pwd
import shutil
import tarfile

import httpx
import pytest

from tests.fixtures.builder import BuildLog, run_command, running, unpacked, world_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url():
    folder = world_dir("moorage-django-db-")
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    yield f"sqlite:///{folder}/db.sqlite3"
    shutil.rmtree(folder, ignore_errors=True)


def test_django_app_from_pyproject_migrates_and_serves(make_builder, app_copy, database_url):
    builder = make_builder()
    source = app_copy("bp_django")
    log = BuildLog()

    result = builder.build("django-app", source, {"DATABASE_URL": database_url}, log)

    assert "-----> Python (Django) app detected" in log.lines
    assert "-----> Installing dependencies from pyproject.toml with pip" in log.lines
    assert "-----> Running: python manage.py collectstatic --noinput" in log.lines
    assert set(result.process_types) == {"web", "release"}
    with tarfile.open(result.slug) as slug:
        assert "./staticfiles/app.css" in slug.getnames()

    env = {"DATABASE_URL": database_url}
    with unpacked(result.slug) as app_dir:
        migrated = run_command(app_dir, result.process_types["release"], env)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert "Applying auth.0001_initial... OK" in migrated.stdout
        with running(app_dir, result.process_types["web"], env) as url:
            answer = httpx.get(url + "/")
            assert answer.status_code == 200
            assert answer.text == "django on sqlite: 0 users\n"

    # DISABLE_COLLECTSTATIC skips the step (this rebuild also reuses the cached venv).
    log = BuildLog()
    result = builder.build(
        "django-app", source, {"DATABASE_URL": database_url, "DISABLE_COLLECTSTATIC": "1"}, log
    )
    assert "-----> Skipping Django collectstatic (DISABLE_COLLECTSTATIC is set)" in log.lines
    with tarfile.open(result.slug) as slug:
        assert "./staticfiles/app.css" not in slug.getnames()
