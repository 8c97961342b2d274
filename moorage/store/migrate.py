"""Bring a state database to the newest schema with alembic.

Why programmatic: ``moorage up``, the broker and the tests all call :func:`upgrade`
at start-up, so an operator never runs a separate migration step by hand, and the
migrations in ``moorage/store/migrations`` are exercised by every test run.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str) -> None:
    command.upgrade(alembic_config(url), "head")
