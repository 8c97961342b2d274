"""Starting the embedded PostgreSQL, Redis and MariaDB when the catalog needs them and none is configured.

Why at the entry points only (``moorage broker``, ``moorage up``): the embedded servers
are the zero-configuration default for one machine. Tests and operators with their own
servers pass admin URLs, and then nothing is started.
"""

from __future__ import annotations

import logging
from typing import Protocol

from moorage.catalog.model import Catalog
from moorage.settings import Settings

log = logging.getLogger(__name__)


class Background(Protocol):
    """What the entry points stop at the end: servers, and the dedicated Redis servers."""

    def stop(self) -> None: ...


def start_embedded(settings: Settings, catalog: Catalog) -> tuple[Settings, list[Background]]:
    """Start what is missing; return settings pointing at the servers, and the servers."""
    from moorage.embedded import EmbeddedMariaDB, EmbeddedPostgres, EmbeddedRedis
    from moorage.embedded.redis_supervisor import DedicatedServers

    providers = {o.provider for o in catalog.offerings}
    started: list[Background] = []
    services: dict[str, str] = {}
    if has_dedicated_redis(catalog):  # the supervisors of the broker processes start them
        started.append(DedicatedServers(settings.data_dir))
    if "postgres" in providers and not settings.services.postgres_admin_url:
        server = EmbeddedPostgres(settings.data_dir)
        services["postgres_admin_url"] = server.start()
        started.append(server)
        log.info("embedded PostgreSQL ready on port %s", server.port)
    if "redis" in providers and not settings.services.redis_admin_url:
        redis = EmbeddedRedis(settings.data_dir)
        services["redis_admin_url"] = redis.start()
        started.append(redis)
        log.info("embedded Redis ready on port %s", redis.port)
    if "mysql" in providers and not settings.services.mysql_admin_url:
        mariadb = EmbeddedMariaDB(settings.data_dir)
        services["mysql_admin_url"] = mariadb.start()
        started.append(mariadb)
        log.info("embedded MariaDB ready on port %s", mariadb.port)
    if services:
        settings = settings.with_group(services=services)
    return settings, started


def supervise_embedded(settings: Settings, catalog: Catalog) -> list[Background]:
    """Start the thread that keeps dedicated Redis servers running, when a plan has them.

    Called in every broker process (each gunicorn worker, ``moorage worker``), after any
    fork; the supervisors of several processes share the work through per-instance locks.
    """
    from moorage.embedded.redis_supervisor import RedisSupervisor

    return [RedisSupervisor(settings.data_dir).start()] if has_dedicated_redis(catalog) else []


def has_dedicated_redis(catalog: Catalog) -> bool:
    """True when a plan of a ``redis`` offering runs a server per instance."""
    return any(
        o.provider == "redis" and any(o.plan_config(p).get("server") == "dedicated" for p in o.plans)
        for o in catalog.offerings
    )
