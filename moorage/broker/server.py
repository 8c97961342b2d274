"""Serving the broker with gunicorn (never Flask's development server).

Why the app is built in ``load()``: gunicorn calls it in each worker process after the
fork, so every process gets its own database connections and worker threads.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from moorage.broker.app import BrokerRuntime, create_app
from moorage.settings import Settings

log = logging.getLogger(__name__)


class BrokerServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, with_worker: bool = True) -> None:
        self.settings = settings
        self.with_worker = with_worker
        super().__init__()

    def load_config(self) -> None:
        b = self.settings.broker
        options: dict[str, Any] = {
            "bind": f"{b.host}:{b.port}",
            "workers": b.processes,
            "threads": b.threads,
            "worker_class": "gthread",
            "timeout": 120,
            "graceful_timeout": 10,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.settings.log_level.lower(),
            "proc_name": "moorage-broker",
            # No gunicorn control socket: two servers would share ~/.gunicorn/gunicorn.ctl.
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        runtime = BrokerRuntime.start(self.settings, with_worker=self.with_worker)
        return create_app(runtime)


def serve(settings: Settings, with_worker: bool = True) -> None:
    """Start embedded servers if needed (before gunicorn forks), then serve until stopped."""
    from moorage.broker.app import broker_password
    from moorage.broker.embedded import start_embedded
    from moorage.catalog.loader import load_catalog
    from moorage.store import migrate

    settings, servers = start_embedded(settings, load_catalog(settings.catalog_dirs))
    # Once, before gunicorn forks its workers: they would race on both.
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    migrate.upgrade(settings.state_url)
    if not settings.broker.password:
        broker_password(settings.data_dir)
    try:
        BrokerServer(settings, with_worker).run()
    finally:
        for server in servers:
            server.stop()
