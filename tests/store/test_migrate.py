"""Schema upgrades are safe when several processes start against one fresh database.

``moorage up`` starts the broker and the controller side by side and both upgrade the
state database; before the lock, the slower one died with "table already exists".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from moorage.store.migrate import alembic_config

UPGRADERS = 4
# Each child imports everything first, then waits on stdin, so all of them reach
# ``upgrade`` at the same moment: the parent releases them together.
CHILD = "import sys; from moorage.store.migrate import upgrade; sys.stdin.read(); upgrade(sys.argv[1])"


def _upgrade_concurrently(url: str, logs: Path) -> list[str]:
    """Run the upgraders at once; the output of each one that failed."""
    children = []
    for i in range(UPGRADERS):
        with (logs / f"upgrader-{i}.log").open("wb") as out:
            children.append(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, url], stdin=subprocess.PIPE, stdout=out, stderr=out
                )
            )
    for child in children:
        child.stdin.close()  # type: ignore[union-attr]
    return [
        (logs / f"upgrader-{i}.log").read_text()[-2000:]
        for i, child in enumerate(children)
        if child.wait(timeout=120) != 0
    ]


def _current_revision(url: str) -> str | None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_upgrades_of_a_fresh_database_all_succeed(backend, tmp_path, request):
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_database")
    )
    assert _upgrade_concurrently(url, tmp_path) == []
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert _current_revision(url) == head


def test_upgrade_creates_a_missing_folder_for_the_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'state.db'}"
    assert _upgrade_concurrently(url, tmp_path) == []
    assert (tmp_path / "not" / "yet").stat().st_mode & 0o777 == 0o700
    assert _current_revision(url) == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
