"""The health check a web process must pass before the router sends it traffic.

Why this shape: Heroku only waits for a web process to bind ``$PORT``; Moorage asks a
little more where it can, ``GET /`` answering any status below 500, and falls back to
the TCP connect when the process accepts connections but does not speak HTTP (a
websocket-only or custom-protocol server is still healthy once it listens).
"""

from __future__ import annotations

import http.client
import socket

#: Seconds one probe may take.
PROBE_TIMEOUT = 2.0


def probe(port: int, host: str = "127.0.0.1") -> bool:
    """True when the process on ``port`` is ready for traffic."""
    try:
        sock = socket.create_connection((host, port), timeout=PROBE_TIMEOUT)
    except OSError:
        return False
    conn = http.client.HTTPConnection(host, port, timeout=PROBE_TIMEOUT)
    conn.sock = sock
    try:
        conn.request("GET", "/", headers={"User-Agent": "moorage-health", "Host": "localhost"})
        response = conn.getresponse()
        response.read(64 * 1024)
        return response.status < 500
    except (http.client.HTTPException, OSError, ValueError):
        # Listening, but not (well-behaved) HTTP: the TCP connect is the check.
        return True
    finally:
        conn.close()
