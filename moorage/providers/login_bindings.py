"""What a binding that is a login on one server hands back: credentials and an endpoint.

Why: the database and Redis providers (shared, dedicated, in-cluster, RDS) all bind by
making a user with a password on one host and port; the broker answers with the
credentials, that one endpoint (for network policy), and the user name in the outputs,
which unbind finds the login by. Database credentials come in the shapes common drivers
and buildpacks read (``uri``, ``jdbcUrl``, and the parts), whatever the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from moorage.catalog.provider import BindResult, Endpoint


def login_binding(credentials: Mapping[str, Any], host: str, port: int, username: str) -> BindResult:
    """The binding: its credentials, the endpoint they name, and the user to drop on unbind."""
    return BindResult(
        credentials=credentials,
        endpoints=[Endpoint(host=host, ports=[str(port)])],
        outputs={"username": username},
    )


def database_credentials(
    scheme: str, jdbc_scheme: str, host: str, port: int, database: str, username: str, password: str
) -> dict[str, Any]:
    """``<scheme>://user:password@host:port/database``, its JDBC form, and the parts by several names."""
    user, secret = quote(username, safe=""), quote(password, safe="")
    return {
        "uri": f"{scheme}://{user}:{secret}@{host}:{port}/{database}",
        "jdbcUrl": f"jdbc:{jdbc_scheme}://{host}:{port}/{database}?"
        + urlencode({"user": username, "password": password}),
        "username": username,
        "password": password,
        "host": host,
        "hostname": host,
        "port": port,
        "database": database,
        "name": database,
    }
