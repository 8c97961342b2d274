"""Worker threads that run due operations, and the thread that keeps their leases alive.

Why threads in the broker process by default: the embedded default is one process to
start and nothing to configure. ``moorage worker`` runs the same loop in a process of its
own, and several broker and worker replicas can share one PostgreSQL state database:
claims are leases, so each operation runs in one place at a time.
"""

from __future__ import annotations

import logging
import threading

from moorage.ops.engine import OperationEngine

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, engine: OperationEngine, threads: int, poll_seconds: float) -> None:
        self.engine = engine
        self.threads = threads
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"moorage-worker-{n}", daemon=True)
            t.start()
            self._threads.append(t)
        keeper = threading.Thread(target=self._keep_leases, name="moorage-leases", daemon=True)
        keeper.start()
        self._threads.append(keeper)

    def wake(self) -> None:
        """Look for work now (a request has just left an operation for the worker)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                op_id = self.engine.claim_next()
                if op_id is not None:
                    self.engine.run_step(op_id)
                    continue
            except Exception:  # the loop must survive a database hiccup
                log.exception("worker loop error")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _keep_leases(self) -> None:
        interval = max(self.engine.settings.worker.lease_seconds / 3, 0.2)
        while not self._stop.wait(interval):
            try:
                self.engine.renew_leases()
            except Exception:
                log.exception("lease renewal failed")
