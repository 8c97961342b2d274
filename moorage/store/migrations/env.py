"""alembic environment: runs migrations online against the URL given by ``migrate.py``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

import moorage.store.models  # noqa: F401  (registers the broker tables)
from moorage.store.base import Base
from moorage.store.db import make_nullpool_engine

try:  # the platform's tables, once that package exists
    import moorage.store.apps  # noqa: F401
    import moorage.store.certs  # noqa: F401
    import moorage.store.services  # noqa: F401
except ImportError:  # pragma: no cover
    pass

config = context.config
MIGRATION_LOCK_KEY = 0x6D6F6F72  # "moor": one key for every Moorage state database
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = make_nullpool_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Serialise concurrent upgrades (broker and controller start together);
                # released at commit. The version table is read after the lock.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
    engine.dispose()


run_migrations_online()
