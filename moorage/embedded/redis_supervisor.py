"""Keeping every dedicated Redis instance's server running: a thread of the broker process.

Why a thread and not the request that provisioned the instance: a server that crashes,
or that was not running when Moorage started (a reboot), must come back without anyone
asking. ``BrokerRuntime`` starts one :class:`RedisSupervisor` in each broker process
(each gunicorn worker and each ``moorage worker``); every round it looks at each instance
folder that has a ``settings.json`` and starts its server again when the pidfile names no
live ``redis-server``. Starting happens under the instance's ``flock``, so several
supervisors (and provision requests) never start one instance twice. A server that
fails to start is retried with a backoff (1 s doubling to 60 s), and the reason is logged.

:class:`DedicatedServers` is the other end: the entry points (``moorage broker``, ``moorage
up``) stop every instance's server when they stop, as they stop the shared embedded
Redis, and the next start's supervisors start them again with their data. A Moorage that
dies without stopping (SIGKILL) leaves them running, and the next one adopts them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from moorage.embedded.redis_children import reap
from moorage.embedded.redis_instance import INSTANCES_DIR, InstanceServer
from moorage.errors import Error

log = logging.getLogger(__name__)


class RedisSupervisor:
    """``start()`` a daemon thread that checks every ``interval`` seconds; ``stop()`` it."""

    def __init__(self, data_dir: Path, *, interval: float = 0.5, max_backoff: float = 60.0) -> None:
        self.root = Path(data_dir).absolute() / INSTANCES_DIR
        self.interval = interval
        self.max_backoff = max_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: folder → (next attempt at, current backoff) for servers that failed to start.
        self._failing: dict[Path, tuple[float, float]] = {}

    def start(self) -> RedisSupervisor:
        self._thread = threading.Thread(target=self._run, name="redis-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def check_once(self) -> list[Path]:
        """One round: start what should run and does not; the folders started."""
        reap()
        started: list[Path] = []
        try:
            folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return started
        now = time.monotonic()
        for gone in set(self._failing) - set(folders):
            del self._failing[gone]
        for folder in folders:
            retry_at, backoff = self._failing.get(folder, (0.0, 0.0))
            if now < retry_at:
                continue
            try:
                if InstanceServer(folder).ensure_running():
                    started.append(folder)
                self._failing.pop(folder, None)
            except (Error, OSError) as exc:
                backoff = min(max(backoff * 2, 1.0), self.max_backoff)
                self._failing[folder] = (now + backoff, backoff)
                log.error(
                    "could not start the redis-server in %s (next try in %.0f s): %s", folder, backoff, exc
                )
        return started

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once()
            except Exception:  # never let the thread die: supervision must go on
                log.exception("Redis supervisor round failed")


class DedicatedServers:
    """Every dedicated instance's server under a data dir, as one thing to stop at shutdown."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).absolute() / INSTANCES_DIR

    def stop(self) -> None:
        try:
            folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return
        for folder in folders:
            try:
                InstanceServer(folder).stop()
            except Error as exc:
                log.error("could not stop the redis-server in %s: %s", folder, exc)
