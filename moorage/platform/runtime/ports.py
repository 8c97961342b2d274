"""Loopback ports for web processes: free ones, never handed to two live processes at once.

Why a reservation on top of the kernel's choice: a port the kernel just called free may be
handed out again before the first process binds it; the runtime keeps every port of a live
process reserved until that process is stopped.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable


class LoopbackPorts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken: set[int] = set()

    def reserve(self) -> int:
        """A free port on 127.0.0.1 that no live process holds."""
        with self._lock:
            while True:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    port = s.getsockname()[1]
                if port not in self._taken:
                    self._taken.add(port)
                    return port

    def release(self, ports: Iterable[int | None]) -> None:
        with self._lock:
            for port in ports:
                if port is not None:
                    self._taken.discard(port)
