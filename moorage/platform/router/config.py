"""Rendering the router's nginx configuration from the route table.

Why separate from process management: the config is a pure function of the routes and
the settings, so it can be validated and tested without nginx, and every value that
reaches the file is checked here first. App names, host names and upstream addresses
are user input; anything that is not a DNS name, an IP address or a port is refused, so
nothing a user types can add an nginx directive.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from moorage.errors import InvalidParametersError

#: The ``Host`` the router answers its own generation probe on; ``.invalid`` can never
#: be a real domain (RFC 6761), and ``validate_hostname`` refuses it.
PROBE_HOST = "moorage-router.invalid"
PROBE_PATH = "/_moorage/generation"

_APP = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True)
class Route:
    """Where one app's traffic goes: its host names and its healthy web processes."""

    app: str
    hostnames: tuple[str, ...]
    upstreams: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class RenderOptions:
    root: Path
    port: int
    max_body_mb: int
    shutdown_timeout: float
    #: ``(user, group)`` for the ``user`` directive, or None when not running as root.
    worker_user: tuple[str, str] | None
    worker_processes: int = 2


def validate_app(app: str) -> str:
    if not isinstance(app, str) or len(app) > 63 or not _APP.match(app):
        raise InvalidParametersError(
            f"app name {app!r} is not a DNS label (lowercase letters, digits and '-', at most 63 characters)"
        )
    return app


def validate_hostname(hostname: str) -> str:
    name = hostname.strip().lower().rstrip(".") if isinstance(hostname, str) else ""
    if not name or len(name) > 253 or not _HOST.match(name) or name.endswith(".invalid"):
        raise InvalidParametersError(
            f"host name {hostname!r} is not a valid domain (letters, digits, '-' and '.', optionally '*.' first)"
        )
    return name


def validate_upstream(upstream: tuple[str, int]) -> tuple[str, int]:
    try:
        host, port = upstream
    except (TypeError, ValueError):
        raise InvalidParametersError(f"upstream {upstream!r} is not a (host, port) pair") from None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise InvalidParametersError(f"upstream port {port!r} is not a port number (1-65535)")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not isinstance(host, str) or not _HOST.match(host) or host.startswith("*"):
            raise InvalidParametersError(
                f"upstream host {host!r} is neither an IP address nor a host name"
            ) from None
        return host, port
    return (f"[{address}]" if address.version == 6 else str(address)), port


def make_route(app: str, hostnames: Iterable[str], upstreams: Iterable[tuple[str, int]]) -> Route:
    names = tuple(dict.fromkeys(validate_hostname(h) for h in hostnames))
    if not names:
        raise InvalidParametersError(f"app {app!r} needs at least one host name to be routed")
    return Route(validate_app(app), names, tuple(validate_upstream(u) for u in upstreams))


def access_log_path(root: Path, app: str) -> Path:
    return root / "logs" / f"access-{app}.log"


def render(options: RenderOptions, routes: Mapping[str, Route], generation: int) -> str:
    """The whole ``nginx.conf`` for ``routes``; ``generation`` is served to the probe."""
    root = options.root
    user = f"user {options.worker_user[0]} {options.worker_user[1]};\n" if options.worker_user else ""
    listen = f"127.0.0.1:{options.port}"
    temp = root / "temp"
    parts = [
        f"# Written by Moorage (generation {generation}); edits are overwritten.\n",
        user,
        f"worker_processes {options.worker_processes};\n",
        "daemon off;\nmaster_process on;\n",
        f"pid {root / 'nginx.pid'};\n",
        f"error_log {root / 'logs' / 'error.log'} warn;\n",
        f"worker_shutdown_timeout {max(1, int(options.shutdown_timeout))}s;\n",
        "events { worker_connections 4096; }\n",
        "http {\n",
        "  access_log off;\n  server_tokens off;\n  default_type text/plain;\n",
        "  keepalive_timeout 65s;\n",
        f"  client_max_body_size {options.max_body_mb}m;\n",
        f"  client_body_temp_path {temp / 'client_body'};\n",
        f"  proxy_temp_path {temp / 'proxy'};\n",
        f"  fastcgi_temp_path {temp / 'fastcgi'};\n",
        f"  uwsgi_temp_path {temp / 'uwsgi'};\n",
        f"  scgi_temp_path {temp / 'scgi'};\n",
        "  log_format moorage 'at=info app=$moorage_app method=$request_method path=\"$request_uri\" '\n",
        "    'host=$host request_id=$moorage_request_id fwd=\"$remote_addr\" status=$status '\n",
        "    'bytes=$body_bytes_sent service=${request_time}s upstream=$upstream_addr';\n",
        "  map $http_x_request_id $moorage_request_id {\n",
        '    default $request_id;\n    "~^[A-Za-z0-9+/=._-]{20,200}$" $http_x_request_id;\n  }\n',
        "  proxy_http_version 1.1;\n",
        '  proxy_set_header Connection "";\n',
        "  proxy_set_header Host $http_host;\n",
        "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n",
        "  proxy_set_header X-Forwarded-Proto $scheme;\n",
        "  proxy_set_header X-Forwarded-Port $server_port;\n",
        "  proxy_set_header X-Request-Id $moorage_request_id;\n",
        "  add_header X-Request-Id $moorage_request_id always;\n",
        "  proxy_connect_timeout 5s;\n  proxy_read_timeout 120s;\n  proxy_send_timeout 120s;\n",
        "  proxy_next_upstream error timeout;\n",
        "  server {\n",
        f"    listen {listen} default_server;\n    server_name _;\n",
        "    set $moorage_app -;\n",
        '    location / { return 404 "No app is configured for this host name.\\n"; }\n',
        "  }\n",
        "  server {\n",
        f"    listen {listen};\n    server_name {PROBE_HOST};\n",
        f'    location = {PROBE_PATH} {{ return 200 "{generation}"; }}\n',
        '    location / { return 404 "\\n"; }\n',
        "  }\n",
    ]
    for route in sorted(routes.values(), key=lambda r: r.app):
        parts.append(_render_app(route, listen, root))
    parts.append("}\n")
    return "".join(parts)


def _render_app(route: Route, listen: str, root: Path) -> str:
    app = route.app
    lines = []
    if route.upstreams:
        lines.append(f"  upstream moorage_app_{app.replace('-', '_')} {{\n")
        for host, port in route.upstreams:
            lines.append(f"    server {host}:{port} max_fails=1 fail_timeout=2s;\n")
        lines.append("    keepalive 32;\n  }\n")
    lines += [
        "  server {\n",
        f"    listen {listen};\n",
        f"    server_name {' '.join(route.hostnames)};\n",
        f"    set $moorage_app {app};\n",
        f"    access_log {access_log_path(root, app)} moorage buffer=16k flush=500ms;\n",
    ]
    if route.upstreams:
        lines += [
            f"    location / {{ proxy_pass http://moorage_app_{app.replace('-', '_')}; }}\n",
            "    error_page 502 @moorage_bad_gateway;\n",
            "    location @moorage_bad_gateway {\n",
            f'      return 502 "Application error: no web process of {app} answered.\\n";\n',
            "    }\n",
        ]
    else:
        lines.append(f'    location / {{ return 503 "No web process of {app} is running.\\n"; }}\n')
    lines.append("  }\n")
    return "".join(lines)
