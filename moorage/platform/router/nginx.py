"""The router: Moorage's own nginx master, whose routes change without a reload.

Why no reloads: a reload (SIGHUP) starts new workers and retires the old ones, which
close their idle keep-alive connections while clients may be sending on them — the
``RemoteDisconnected`` errors of issue 12. So the configuration is static (written at
start from the settings) and the route table is a Lua shared dict inside nginx that
this class changes through a control server on a unix socket: ``PUT /apps/<app>`` with
the host names and live backends as JSON, ``DELETE /apps/<app>``. The balancer
(``balancer_by_lua``) reads the dict per request, so when ``set_routes`` returns every
worker uses the new backends, and no connection is closed. This is how Kubernetes'
ingress-nginx changes endpoints (see docs/architecture.md for the choice).

Moorage runs its own master with everything (config, pid file, logs, temp paths, the
control socket) under ``<data_dir>/router/`` and never touches ``/etc/nginx``.
``wait_drained`` waits until no request is still in flight to a backend that left the
routes, before the runtime stops that process.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from moorage.errors import ConfigurationError, ConflictError, Error
from moorage.platform.identity import app_user
from moorage.platform.router.config import (
    LUA_MODULES,
    MODULES,
    RenderOptions,
    Route,
    SniCertificate,
    access_log_path,
    control_socket,
    make_route,
    parse_addresses,
    render,
    validate_app,
    validate_hostname,
)
from moorage.platform.router.processes import kill_and_wait, terminate, worker_uids
from moorage.platform.router.tls import default_pair
from moorage.settings import Settings

log = logging.getLogger(__name__)

NGINX = "/usr/sbin/nginx"
_START_TIMEOUT = 10.0
_CONTROL_TIMEOUT = 5.0


class Router:
    """``Router(settings).start()``, ``set_routes(app, hostnames, upstreams)``, ``remove``, ``stop``."""

    def __init__(self, settings: Settings, nginx: str = NGINX) -> None:
        self.settings = settings
        self.nginx = nginx
        self.root = settings.data_dir / "router"
        platform = settings.platform
        self.port = platform.router_port
        self.addresses = parse_addresses(platform.router_addresses)
        self._routes: dict[str, Route] = {}
        #: Per app: the body of ``PUT /tls/<app>`` (SNI certificates, redirect), pushed again at start.
        self._tls: dict[str, dict[str, object]] = {}
        #: Backends that left the routes and may still have requests in flight.
        self._retired: set[str] = set()
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._user = app_user(platform)
        self._options = RenderOptions(
            root=self.root,
            addresses=self.addresses,
            port=self.port,
            max_body_mb=platform.router_max_body_mb,
            shutdown_timeout=platform.stop_grace_seconds,
            first_byte_timeout=platform.router_first_byte_timeout_seconds,
            websocket_idle=platform.router_websocket_idle_seconds,
            worker_user=(self._user.name, self._user.group) if self._user.drop else None,
            https_port=platform.router_https_port,
        )

    # -- lifecycle -------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        return self.root / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.root / "logs" / "error.log"

    @property
    def master_pid(self) -> int | None:
        """The nginx master's pid: the same for the router's whole life (no reloads)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the nginx master, wait until it answers, load the routes; stops a stale one first."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            self._check_modules()
            self._prepare_dirs()
            if self._options.https_port:
                # Checked (or made) before nginx starts, so a bad pair is a clear error.
                self._options = replace(self._options, tls=self._tls_pair())
            self._stop_stale()
            # A master killed without its exit handler leaves the socket file, and bind fails.
            control_socket(self.root).unlink(missing_ok=True)
            self._write_config(render(self._options))
            stderr = open(self.root / "logs" / "stderr.log", "ab")  # noqa: SIM115 - handed to the child
            try:
                self._process = subprocess.Popen(
                    [self.nginx, "-p", f"{self.root}/", "-c", str(self.conf_path), "-e", str(self.error_log)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ConfigurationError(f"cannot start the router ({self.nginx}): {exc.strerror}") from None
            finally:
                stderr.close()
            self._wait_ready()
            for route in self._routes.values():
                self._put(route)
            for app, body in self._tls.items():
                self._control("PUT", f"/tls/{app}", body)
            log.info("router listening", extra={"port": self.port})

    def stop(self) -> None:
        """Stop gracefully (SIGQUIT), then by force after the grace period."""
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            terminate(process, self.settings.platform.stop_grace_seconds)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def https_port(self) -> int:
        """The TLS listener's port; 0 when TLS is off."""
        return self._options.https_port

    @property
    def url(self) -> str:
        address = self.addresses[0]
        host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(address, address)
        return f"http://{host}:{self.port}"

    # -- routes ----------------------------------------------------------------------

    def set_routes(self, app: str, hostnames: Iterable[str], upstreams: Iterable[tuple[str, int]]) -> None:
        """Route ``hostnames`` to ``upstreams`` (round-robin); no upstreams answers 503."""
        route = make_route(app, hostnames, upstreams)
        with self._lock:
            for other in self._routes.values():
                taken = set(other.hostnames) & set(route.hostnames)
                if other.app != app and taken:
                    raise ConflictError(f"host name {sorted(taken)[0]} is already routed to app {other.app}")
            previous = self._routes.get(app)
            if previous == route:
                return
            if self.running:
                self._put(route)
            self._routes[app] = route
            self._retire(previous)

    def remove(self, app: str) -> None:
        validate_app(app)
        with self._lock:
            previous = self._routes.get(app)
            if previous is None:
                return
            if self.running:
                self._control("DELETE", f"/apps/{app}")
                if app in self._tls:
                    self._control("DELETE", f"/tls/{app}")
            self._tls.pop(app, None)
            del self._routes[app]
            self._retire(previous)

    def https_refusal(self) -> str | None:
        """Why ``certs:add`` is refused (no HTTPS listener), or ``None``."""
        if self.https_port:
            return None
        return "the router has no HTTPS listener; the operator sets MOORAGE_PLATFORM_ROUTER_HTTPS_PORT"

    def set_tls(self, app: str, certs: Iterable[SniCertificate], force_https: bool) -> None:
        """Serve each certificate for its hosts (by SNI), and redirect HTTP when ``force_https``.

        The whole TLS state of the app is replaced; nginx checks every PEM first and
        changes nothing when one does not parse.
        """
        validate_app(app)
        body: dict[str, object] = {
            "certs": [
                {"hosts": [validate_hostname(h) for h in c.hosts], "cert": c.cert_pem, "key": c.key_pem}
                for c in certs
            ],
            "force_https": bool(force_https),
        }
        with self._lock:
            if self.running:
                self._control("PUT", f"/tls/{app}", body)
            self._tls[app] = body

    def routes(self) -> dict[str, Route]:
        with self._lock:
            return dict(self._routes)

    def access_log(self, app: str) -> Path:
        """The file nginx appends ``app``'s access lines to (the runtime tails it)."""
        return access_log_path(self.root, validate_app(app))

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until no request is in flight to a backend that left the routes."""
        limit = self.settings.platform.stop_grace_seconds + 1 if timeout is None else timeout
        deadline = time.monotonic() + limit
        while self.running:
            with self._lock:
                retired = set(self._retired)
            if not retired:
                return True
            try:
                busy = set(self._control("GET", "/inflight"))
            except Error:
                log.exception("cannot ask the router what is in flight")
                return False
            with self._lock:
                self._retired -= retired - busy
            if not retired & busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    # -- internals -------------------------------------------------------------------

    def _retire(self, previous: Route | None) -> None:
        routed = {_peer(u) for r in self._routes.values() for u in r.upstreams}
        if previous is not None:
            self._retired |= {_peer(u) for u in previous.upstreams} - routed
        self._retired -= routed

    def _put(self, route: Route) -> None:
        body = {"hosts": list(route.hostnames), "backends": [_peer(u) for u in route.upstreams]}
        self._control("PUT", f"/apps/{route.app}", body)

    def _control(self, method: str, path: str, body: object = None) -> dict[str, object]:
        """One request to the control server; an error names what nginx answered."""
        conn = _UnixConnection(control_socket(self.root), _CONTROL_TIMEOUT)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            text = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Error(f"the router's control socket did not answer {method} {path}: {exc}") from None
        finally:
            conn.close()
        if response.status != 200:
            raise Error(f"the router refused {method} {path}: {response.status} {text[:300]!r}")
        return json.loads(text)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ConfigurationError(
                    f"the router (nginx) exited during start on port {self.port}: {self._error_tail()}"
                )
            try:
                self._control("GET", "/healthz")
                if self._workers_ready():
                    return
            except Error:
                pass
            time.sleep(0.01)
        raise Error(f"the router did not answer within {_START_TIMEOUT:.0f}s: {self._error_tail()}")

    def _workers_ready(self) -> bool:
        """Every worker has started and, as root, runs as the unprivileged user already."""
        assert self._process is not None
        uids = worker_uids(self._process.pid)
        if len(uids) < self._options.worker_processes:
            return False
        return not self._user.drop or all(uid == self._user.uid for uid in uids)

    def _tls_pair(self) -> tuple[Path, Path]:
        platform = self.settings.platform
        cert, key = platform.router_tls_cert_file, platform.router_tls_key_file
        return default_pair(self.root, platform.base_domain, cert, key)

    def _check_modules(self) -> None:
        missing = [name for name in LUA_MODULES if not (MODULES / name).exists()]
        if missing:
            raise ConfigurationError(
                f"the router needs nginx's Lua module ({', '.join(missing)} missing in {MODULES}); "
                "install libnginx-mod-http-lua and lua-cjson (scripts/bootstrap does)"
            )

    def _prepare_dirs(self) -> None:
        for sub in ("logs", "temp", "www", "control", "access"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Logs are for Moorage only; access lines name every request of every app. The
        # workers open each app's access file (its name has the app in it): they own that folder.
        (self.root / "logs").chmod(0o700)
        apps = self.root / "access"
        if self._user.drop:
            os.chown(apps, self._user.uid, self._user.gid)
        apps.chmod(0o700)
        # nginx makes the control socket 0666: the folder keeps everyone else out.
        (self.root / "control").chmod(0o700)

    def _write_config(self, text: str) -> None:
        tmp = self.root / "nginx.conf.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.conf_path)

    def _error_tail(self) -> str:
        lines: list[str] = []
        for path in (self.root / "logs" / "stderr.log", self.error_log):
            try:
                lines += path.read_text(errors="replace").splitlines()[-3:]
            except FileNotFoundError:
                continue
        return " | ".join(lines) or "no error output"

    def _stop_stale(self) -> None:
        """A master left by a Moorage that died holds the port: stop it if it is ours."""
        try:
            pid = int((self.root / "nginx.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return
        if "nginx: master process" not in cmdline or str(self.conf_path) not in cmdline:
            return
        log.warning("stopping a stale router", extra={"pid": pid})
        kill_and_wait(pid, self.settings.platform.stop_grace_seconds)


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the control server's unix socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _peer(upstream: tuple[str, int]) -> str:
    return f"{upstream[0]}:{upstream[1]}"
