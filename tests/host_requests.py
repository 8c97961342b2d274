"""One HTTP request with a chosen ``Host`` header, as a browser sends it to the router.

Why http.client and not httpx: the router picks the app by ``Host``, and these tests
want the raw status, body and headers of exactly one request on a fresh connection.
"""

from __future__ import annotations

import http.client


def request(
    port: int,
    host: str,
    path: str = "/",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()
