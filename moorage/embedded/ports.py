"""Free loopback TCP ports for servers Moorage (or a test) starts.

Why a module: several parts (the embedded servers, the test fixtures of every area) need
a port nobody listens on, and each would otherwise write its own slightly wrong version.
The kernel picks the port (bind to port 0), which is the only race-free way to get one;
the caller still has to cope with losing it before it binds, so servers retry on a fresh
port when theirs is taken.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that was free a moment ago (chosen by the kernel)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on ``host:port`` and a server could bind it now.

    SO_REUSEADDR as the servers use it: connections in TIME_WAIT from a previous run do
    not make the port "taken" (a listener still does).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_answers(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
