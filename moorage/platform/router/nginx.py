"""The router: Moorage's own nginx master process, configured and reloaded by Moorage.

Why nginx and why its own master: nginx's graceful reload (SIGHUP: new workers take new
connections while old workers finish their in-flight requests) is what makes a deploy
lose no request, as in Deis and Dokku. Moorage runs its own master with everything
(config, pid file, logs, temp paths) under ``<data_dir>/router/`` and never touches
``/etc/nginx``, so it coexists with a system nginx.

Every change renders the whole config, checks it with ``nginx -t``, swaps it in, sends
SIGHUP and waits until the router answers its probe with the new generation number, so
when ``set_routes`` returns, new connections go to the new upstreams. ``wait_drained``
then waits for the old workers (and their in-flight requests) to finish before the
runtime stops the old processes.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from moorage.errors import ConfigurationError, ConflictError, Error, UnprocessableError
from moorage.platform.router.config import (
    PROBE_HOST,
    PROBE_PATH,
    RenderOptions,
    Route,
    access_log_path,
    make_route,
    render,
    validate_app,
)
from moorage.platform.runtime.limits import app_user
from moorage.settings import Settings

log = logging.getLogger(__name__)

NGINX = "/usr/sbin/nginx"
_START_TIMEOUT = 10.0


class Router:
    """``Router(settings).start()``, ``set_routes(app, hostnames, upstreams)``, ``remove``, ``stop``."""

    def __init__(self, settings: Settings, nginx: str = NGINX) -> None:
        self.settings = settings
        self.nginx = nginx
        self.root = settings.data_dir / "router"
        self.port = settings.platform.router_port
        self._routes: dict[str, Route] = {}
        self._generation = 0
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        user = app_user(settings.platform)
        self._options = RenderOptions(
            root=self.root,
            port=self.port,
            max_body_mb=settings.platform.max_request_body_mb,
            shutdown_timeout=settings.platform.stop_grace_seconds,
            worker_user=(user.name, user.group) if user.drop else None,
        )

    # -- lifecycle -------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        return self.root / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.root / "logs" / "error.log"

    def start(self) -> None:
        """Start the nginx master and wait until it answers; stops a stale one first."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            for sub in ("logs", "temp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            # Access logs name every request of every app: for Moorage only (the master opens them).
            (self.root / "logs").chmod(0o700)
            self._stop_stale()
            self._generation += 1
            self._write_config(render(self._options, self._routes, self._generation))
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
            self._wait_generation(self._generation, _START_TIMEOUT, "start")
            log.info("router listening", extra={"port": self.port})

    def stop(self) -> None:
        """Stop gracefully (SIGQUIT), then by force after the grace period."""
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            _terminate(process, self.settings.platform.stop_grace_seconds)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- routes ----------------------------------------------------------------------

    def set_routes(self, app: str, hostnames: Iterable[str], upstreams: Iterable[tuple[str, int]]) -> None:
        """Route ``hostnames`` to ``upstreams`` (round-robin); no upstreams answers 503."""
        route = make_route(app, hostnames, upstreams)
        with self._lock:
            for other in self._routes.values():
                taken = set(other.hostnames) & set(route.hostnames)
                if other.app != app and taken:
                    raise ConflictError(f"host name {sorted(taken)[0]} is already routed to app {other.app}")
            if self._routes.get(app) == route:
                return
            routes = {**self._routes, app: route}
            self._apply(routes)

    def remove(self, app: str) -> None:
        validate_app(app)
        with self._lock:
            if app not in self._routes:
                return
            routes = {k: v for k, v in self._routes.items() if k != app}
            self._apply(routes)

    def routes(self) -> dict[str, Route]:
        with self._lock:
            return dict(self._routes)

    def access_log(self, app: str) -> Path:
        """The file nginx appends ``app``'s access lines to (the runtime tails it)."""
        return access_log_path(self.root, validate_app(app))

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until workers of older configs have finished their in-flight requests."""
        process = self._process
        if process is None:
            return True
        limit = self.settings.platform.stop_grace_seconds + 1 if timeout is None else timeout
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if not _shutting_down_children(process.pid):
                return True
            time.sleep(0.02)
        return False

    # -- internals -------------------------------------------------------------------

    def _apply(self, routes: dict[str, Route]) -> None:
        generation = self._generation + 1
        text = render(self._options, routes, generation)
        if not self.running:
            # Not started yet (or stopped): remember the routes for start().
            self._routes = routes
            return
        candidate = self.root / "nginx.conf.new"
        candidate.write_text(text)
        check = subprocess.run(
            [self.nginx, "-t", "-q", "-p", f"{self.root}/", "-c", str(candidate), "-e", str(self.error_log)],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise UnprocessableError(
                f"the router refused the new configuration: {check.stderr.strip()[-500:]}"
            )
        os.replace(candidate, self.conf_path)
        self._routes = routes
        self._generation = generation
        assert self._process is not None
        master = self._process.pid
        old = {pid for pid, title in _children(master).items() if b"shutting down" not in title}
        os.kill(master, signal.SIGHUP)
        self._wait_generation(generation, _START_TIMEOUT, "reload")
        # The new workers answer; wait until the old ones stopped accepting connections.
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            children = _children(master)
            if all(b"shutting down" in children.get(pid, b"shutting down") for pid in old):
                return
            time.sleep(0.005)

    def _write_config(self, text: str) -> None:
        tmp = self.root / "nginx.conf.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.conf_path)

    def _wait_generation(self, generation: int, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ConfigurationError(
                    f"the router (nginx) exited during {what} on port {self.port}: {self._error_tail()}"
                )
            if self._probe() == generation:
                return
            time.sleep(0.01)
        raise Error(
            f"the router did not serve configuration {generation} within {timeout:.0f}s: {self._error_tail()}"
        )

    def _probe(self) -> int | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
        try:
            conn.request("GET", PROBE_PATH, headers={"Host": PROBE_HOST})
            response = conn.getresponse()
            body = response.read()
            return int(body) if response.status == 200 else None
        except (OSError, ValueError, http.client.HTTPException):
            return None
        finally:
            conn.close()

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
        _kill_and_wait(pid, self.settings.platform.stop_grace_seconds)


def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    for sig, wait in ((signal.SIGQUIT, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        try:
            os.kill(process.pid, sig)
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def _kill_and_wait(pid: int, grace: float) -> None:
    for sig, wait in ((signal.SIGQUIT, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _shutting_down_children(master: int) -> list[int]:
    return [pid for pid, title in _children(master).items() if b"shutting down" in title]


def _children(master: int) -> dict[int, bytes]:
    """Child pid → process title (nginx sets ``worker process is shutting down``)."""
    found: dict[int, bytes] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == master:
                found[int(entry.name)] = Path(entry.path, "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
    return found
