"""The router's static nginx configuration, and the checks on every route value.

Why static: routes live in a Lua shared dict that Moorage changes at run time through
the control socket (see ``lua/moorage_router.lua``), so the file depends only on the
settings and is written once per start; an endpoint change never reloads nginx. App
names, host names and upstream addresses are user input and still reach the Lua side;
anything that is not a DNS name, an IP address or a port is refused here first.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from moorage.errors import InvalidParametersError
from moorage.platform.identity import NAME_RE

MODULES = Path("/usr/lib/nginx/modules")
#: Debian's ``libnginx-mod-http-lua`` needs the NDK module loaded before it.
LUA_MODULES = ("ndk_http_module.so", "ngx_http_lua_module.so")
LUA_DIR = Path(__file__).resolve().parent / "lua"

_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True)
class Route:
    """Where one app's traffic goes: its host names and its healthy web processes."""

    app: str
    hostnames: tuple[str, ...]
    upstreams: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class SniCertificate:
    """A custom domain certificate: served to TLS clients that ask for one of ``hosts``."""

    hosts: tuple[str, ...]
    cert_pem: str
    key_pem: str


@dataclass(frozen=True)
class RenderOptions:
    root: Path
    addresses: tuple[str, ...]
    port: int
    max_body_mb: int
    shutdown_timeout: float
    first_byte_timeout: float
    websocket_idle: float
    #: ``(user, group)`` for the ``user`` directive, or None when not running as root.
    worker_user: tuple[str, str] | None
    worker_processes: int = 2
    #: The TLS listener's port and its default (certificate, key); 0 and None: no TLS.
    https_port: int = 0
    tls: tuple[Path, Path] | None = None


def validate_app(app: str) -> str:
    """An app's name as a route's key: the DNS label rule of ``identity`` (reserved names aside)."""
    if not isinstance(app, str) or len(app) > 63 or not NAME_RE.match(app):
        raise InvalidParametersError(
            f"app name {app!r} is not a DNS label (lowercase letters, digits and '-', at most 63 characters)"
        )
    return app


def validate_hostname(hostname: str) -> str:
    name = hostname.strip().lower().rstrip(".") if isinstance(hostname, str) else ""
    # ``.invalid`` can never be a real domain (RFC 6761).
    if not name or len(name) > 253 or not _HOST.match(name) or name.endswith(".invalid"):
        raise InvalidParametersError(
            f"host name {hostname!r} is not a valid domain (letters, digits, '-' and '.', optionally '*.' first)"
        )
    return name


def validate_upstream(upstream: tuple[str, int]) -> tuple[str, int]:
    """An ``(ip, port)`` pair; names are refused because the balancer does not resolve."""
    try:
        host, port = upstream
    except (TypeError, ValueError):
        raise InvalidParametersError(f"upstream {upstream!r} is not a (host, port) pair") from None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise InvalidParametersError(f"upstream port {port!r} is not a port number (1-65535)")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidParametersError(f"upstream host {host!r} is not an IP address") from None
    return (f"[{address}]" if address.version == 6 else str(address)), port


def parse_addresses(text: str) -> tuple[str, ...]:
    """The router's listen addresses from a comma-separated setting; IPs only."""
    found = []
    for item in text.split(","):
        item = item.strip()
        try:
            address = ipaddress.ip_address(item)
        except ValueError:
            raise InvalidParametersError(
                f"router address {item!r} is not an IP address (router_addresses is comma separated)"
            ) from None
        found.append(f"[{address}]" if address.version == 6 else str(address))
    return tuple(dict.fromkeys(found))


def make_route(app: str, hostnames: Iterable[str], upstreams: Iterable[tuple[str, int]]) -> Route:
    names = tuple(dict.fromkeys(validate_hostname(h) for h in hostnames))
    if not names:
        raise InvalidParametersError(f"app {app!r} needs at least one host name to be routed")
    return Route(validate_app(app), names, tuple(validate_upstream(u) for u in upstreams))


def access_log_path(root: Path, app: str) -> Path:
    return root / "access" / f"access-{app}.log"


def control_socket(root: Path) -> Path:
    """The control server's socket; its folder is 0700 (nginx makes the socket 0666)."""
    return root / "control" / "control.sock"


def render(options: RenderOptions) -> str:
    """The whole ``nginx.conf``: the same for every route table."""
    root = options.root
    user = f"user {options.worker_user[0]} {options.worker_user[1]};\n" if options.worker_user else ""
    temp = root / "temp"
    lua_path = f"{LUA_DIR}/?.lua;;"
    return "".join(
        [
            "# Written by Moorage at start; routes are not in it (see moorage_router.lua).\n",
            *(f"load_module {MODULES / name};\n" for name in LUA_MODULES),
            user,
            f"worker_processes {options.worker_processes};\n",
            "daemon off;\nmaster_process on;\n",
            f"pid {root / 'nginx.pid'};\n",
            f"error_log {root / 'logs' / 'error.log'} warn;\n",
            f"worker_shutdown_timeout {max(1, int(options.shutdown_timeout))}s;\n",
            "events { worker_connections 4096; }\n",
            "http {\n",
            "  access_log off;\n  server_tokens off;\n  default_type text/plain;\n",
            f"  root {root / 'www'};\n",
            f"  lua_package_path '{lua_path}';\n",
            "  lua_shared_dict moorage_routes 16m;\n",
            "  lua_shared_dict moorage_certs 32m;\n",
            # Globals, made once in the master: the per-request hooks skip require().
            "  init_by_lua_block { moorage_router = require('moorage_router');"
            " moorage_tls = require('moorage_tls') }\n",
            "  keepalive_timeout 65s;\n  keepalive_requests 100000;\n",
            f"  client_max_body_size {options.max_body_mb}m;\n",
            *(f"  {kind}_temp_path {temp / kind};\n" for kind in _TEMP_PATHS),
            _LOG_FORMAT,
            "  open_log_file_cache max=1000 inactive=60s valid=60s min_uses=1;\n",
            _PROXY,
            f"  proxy_read_timeout {_seconds(options.first_byte_timeout)};\n",
            f"  proxy_send_timeout {_seconds(options.first_byte_timeout)};\n",
            _UPSTREAM,
            _app_server(options),
            _control_server(root),
            "}\n",
        ]
    )


_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

_LOG_FORMAT = """\
  log_format moorage 'at=info app=$moorage_app method=$request_method path="$request_uri" '
    'host=$host request_id=$moorage_request_id fwd="$remote_addr" status=$status '
    'bytes=$body_bytes_sent service=${request_time}s upstream=$upstream_addr';
  map $http_x_request_id $moorage_request_id {
    default $request_id;
    "~^[A-Za-z0-9+/=._-]{20,200}$" $http_x_request_id;
  }
  map $moorage_app $moorage_logged { "" 0; default 1; }
"""

# A failed connection or a reset before the response goes to the next backend; a timeout
# does not (a slow app is not sent the same request twice).
# Upgrade and Connection: "upgrade" only when the client asks for a WebSocket (no other
# upgrade: h2c through a proxy smuggles requests past it); otherwise both empty, so the
# connection to the app stays in the keep-alive pool. Responses are not buffered:
# server-sent events and other streams reach the client as the app writes them.
# Every header an app framework reads to learn the client's scheme, host or port is the
# router's own (a client's copy is dropped): Rack reads Forwarded first and X-Forwarded-Ssl,
# Django and Express X-Forwarded-Host. Forwarded is cleared, as Heroku's router sends none;
# X-Forwarded-Ssl is "on" over TLS and absent otherwise ($https is empty, so not sent).
# Host is the client's, so it must name the host the request was routed by: a request line
# in absolute form (GET http://app-a/ with Host: evil) is 400, not app-a told "evil".
# X-Forwarded-For is appended to, as on Heroku: only its last entry is the router's.
# X-Request-Start: milliseconds since the epoch as nginx passes the request on (as Heroku).
_PROXY = """\
  map $http_upgrade $moorage_upgrade { default ""; "~*^websocket$" $http_upgrade; }
  map $moorage_upgrade $moorage_connection { default upgrade; "" ""; }
  map "$host $http_host" $moorage_host_agrees {
    default 0;
    "~^[^ ]+ $" 1;
    "~*^([^ ]+) \\1[.]?(:[0-9]+)?$" 1;
  }
  map $msec $moorage_request_start {
    "~^(?<moorage_s>[0-9]+)[.](?<moorage_ms>[0-9]+)$" $moorage_s$moorage_ms;
  }
  proxy_http_version 1.1;
  proxy_set_header Upgrade $moorage_upgrade;
  proxy_set_header Connection $moorage_connection;
  proxy_set_header Host $http_host;
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Proto $scheme;
  proxy_set_header X-Forwarded-Scheme $scheme;
  proxy_set_header X-Forwarded-Port $server_port;
  proxy_set_header X-Forwarded-Host $host;
  proxy_set_header X-Forwarded-Ssl $https;
  proxy_set_header Forwarded "";
  # Other client-address headers frameworks read (Rails: Client-IP; X-Real-IP, True-Client-IP).
  proxy_set_header X-Real-IP "";
  proxy_set_header Client-IP "";
  proxy_set_header True-Client-IP "";
  proxy_set_header X-Request-Id $moorage_request_id;
  proxy_set_header X-Request-Start $moorage_request_start;
  add_header X-Request-Id $moorage_request_id always;
  proxy_buffering off;
  proxy_connect_timeout 5s;
  proxy_next_upstream error;
  proxy_next_upstream_tries 8;
"""

_UPSTREAM = """\
  upstream moorage_backend {
    server 0.0.0.1;  # never used: the balancer picks every peer
    balancer_by_lua_block { moorage_router.balance() }
    keepalive 256;
    keepalive_timeout 60s;
    keepalive_requests 100000;
  }
"""


def _app_server(options: RenderOptions) -> str:
    listen = "".join(f"    listen {a}:{options.port} default_server;\n" for a in options.addresses)
    if options.tls is not None and options.https_port:
        listen += "".join(
            f"    listen {a}:{options.https_port} ssl http2 default_server;\n" for a in options.addresses
        )
        listen += (
            f"    ssl_certificate {options.tls[0]};\n    ssl_certificate_key {options.tls[1]};\n"
            "    ssl_protocols TLSv1.2 TLSv1.3;\n"
            "    ssl_session_cache shared:moorage_tls:10m;\n    ssl_session_timeout 1h;\n"
            # Custom domains' certificates by SNI name (moorage_tls.lua); the default otherwise.
            "    ssl_certificate_by_lua_block { moorage_tls.certificate() }\n"
        )
    log = access_log_path(options.root, "$moorage_app")
    first = int(options.first_byte_timeout)
    return f"""\
  server {{
{listen}    server_name _;
    set $moorage_up 1;
    set_by_lua_block $moorage_app {{ return moorage_router.route() }}
    access_log {log} moorage if=$moorage_logged;
    log_by_lua_block {{ moorage_router.done() }}
    if ($moorage_app = "") {{ return 404 "No app is configured for this host name.\\n"; }}
    if ($moorage_host_agrees = "0") {{ return 400 "The Host header names another host than the request line.\\n"; }}
{_redirect(options)}    if ($moorage_up = "0") {{ return 503 "No web process of $moorage_app is running.\\n"; }}
    location / {{
      if ($moorage_upgrade) {{ return 418; }}
      error_page 418 = @moorage_websocket;
      error_page 502 @moorage_bad_gateway;
      error_page 504 @moorage_timeout;
      proxy_pass http://moorage_backend;
    }}
    location @moorage_websocket {{
      error_page 502 @moorage_bad_gateway;
      error_page 504 @moorage_timeout;
      proxy_read_timeout {_seconds(options.websocket_idle)};
      proxy_send_timeout {_seconds(options.websocket_idle)};
      proxy_pass http://moorage_backend;
    }}
    location @moorage_bad_gateway {{
      return 502 "Application error: no web process of $moorage_app answered.\\n";
    }}
    location @moorage_timeout {{
      return 504 "Application error: $moorage_app did not start its response within {first} s.\\n";
    }}
  }}
"""


def _redirect(options: RenderOptions) -> str:
    """HTTP -> HTTPS for apps that ask (``tls:force:enable``): 301, or 308 to keep a body."""
    if options.tls is None or not options.https_port:
        return ""
    port = "" if options.https_port == 443 else f":{options.https_port}"
    target = f"https://$host{port}$request_uri"
    return (
        "    set_by_lua_block $moorage_redirect { return moorage_tls.redirect() }\n"
        f'    if ($moorage_redirect = "301") {{ return 301 {target}; }}\n'
        f'    if ($moorage_redirect = "308") {{ return 308 {target}; }}\n'
    )


def _control_server(root: Path) -> str:
    return f"""\
  server {{
    listen unix:{control_socket(root)};
    access_log off;
    client_max_body_size 1m;
    client_body_buffer_size 1m;  # the route's JSON stays in memory for the Lua handler
    location / {{ content_by_lua_block {{ moorage_router.control() }} }}
  }}
"""


def _seconds(value: float) -> str:
    return f"{max(1, round(value * 1000))}ms"
