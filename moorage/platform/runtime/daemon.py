"""``moorage supervisor``: the long-lived process that owns app processes and the router.

Why a process of its own: the controller is a web server that may crash, be killed or
be upgraded; the apps must keep serving meanwhile. This process runs the
:class:`~moorage.platform.runtime.local.LocalRuntime` (one supervised child per app
process, restarted with backoff, output written to the app's log file) and the nginx
router, and answers the controller over a unix socket in ``<data_dir>/supervisor/``
(0700, so only Moorage's own user connects). It starts in its own session, so signals
to the controller's (or ``moorage up``'s) process group never reach it. One runs per
data dir: it holds an exclusive lock on ``supervisor/lock`` for its whole life.

It stops (apps, then the router) on SIGTERM or SIGINT; ``moorage up`` sends that on
Ctrl-C unless ``--keep-apps``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moorage.errors import Error, InvalidParametersError
from moorage.platform.router.config import SniCertificate
from moorage.platform.router.nginx import Router
from moorage.platform.runtime import wire
from moorage.platform.runtime.local import LocalRuntime
from moorage.settings import Settings

log = logging.getLogger(__name__)


def folder(data_dir: Path) -> Path:
    return data_dir / "supervisor"


def socket_path(data_dir: Path) -> Path:
    return folder(data_dir) / "supervisor.sock"


class Supervisor:
    """The runtime and router of one data dir, and the socket server in front of them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.router = Router(settings)
        self.runtime: LocalRuntime | None = None
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._stopped = threading.Event()

    def serve(self) -> None:
        """Start the router, then answer requests until SIGTERM/SIGINT; stop everything after."""
        here = folder(self.settings.data_dir)
        here.mkdir(parents=True, exist_ok=True, mode=0o700)
        here.chmod(0o700)
        lock = open(here / "lock", "a+")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("a supervisor already runs for this data dir")
            return
        self.router.start()
        self.runtime = LocalRuntime(self.settings, self.router)
        path = socket_path(self.settings.data_dir)
        path.unlink(missing_ok=True)
        self._server = _Server(str(path), _handler(self))
        (here / "supervisor.pid").write_text(f"{os.getpid()}\n")
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.request_stop())
        log.info("supervisor ready", extra={"pid": os.getpid()})
        thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True)
        thread.start()
        self._stopped.wait()
        self._server.shutdown()
        self._server.server_close()
        path.unlink(missing_ok=True)
        self.runtime.close()
        self.router.stop()
        (here / "supervisor.pid").unlink(missing_ok=True)
        lock.close()

    def request_stop(self) -> None:
        self._stopped.set()

    # -- requests ------------------------------------------------------------------------

    def handle(self, op: str, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        """Run one request; ``send`` streams progress and log lines before the answer."""
        rt = self.runtime
        assert rt is not None
        progress = lambda text: send({"progress": text})  # noqa: E731
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "deploy":
            return rt.deploy(wire.release_from(args["release"]), args["formation"], progress)
        if op == "scale":
            return rt.scale(args["app"], args["formation"], progress)
        if op == "restart":
            return rt.restart(args["app"], args.get("process_type"), progress)
        if op == "status":
            return [wire.status_to(s) for s in rt.status(args["app"])]
        if op == "logs":
            for line in rt.logs(args["app"], int(args.get("lines", 100)), bool(args.get("follow"))):
                send({"line": wire.line_to(line)})
            return None
        if op == "run_once":
            result = rt.run_once(wire.release_from(args["release"]), args["command"], float(args["timeout"]))
            return {"exit_code": result.exit_code, "output": result.output}
        if op == "destroy":
            return rt.destroy(args["app"])
        if op == "set_domains":
            return rt.set_domains(args["app"], args["domains"])
        if op == "crashed_release":
            return rt.crashed_release(args["app"])
        if op == "https_refusal":
            return self.router.https_refusal()
        if op == "set_tls":
            certs = [SniCertificate(tuple(c["hosts"]), c["cert"], c["key"]) for c in args["certs"]]
            return self.router.set_tls(args["app"], certs, bool(args["force_https"]))
        raise InvalidParametersError(f"the supervisor has no operation {op!r}")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def server_bind(self) -> None:
        super().server_bind()
        os.chmod(self.server_address, 0o600)


def _handler(supervisor: Supervisor) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            raw = self.rfile.readline(wire.MAX_LINE)
            if not raw:
                return
            try:
                request = wire.load(raw)
                answer = {
                    "ok": supervisor.handle(str(request["op"]), dict(request.get("args") or {}), self._send)
                }
            except (BrokenPipeError, ConnectionResetError):
                return  # the controller went away (``logs -f`` ended, or it died)
            except Error as exc:
                answer = {"error": wire.error_to(exc)}
            except Exception as exc:  # a bug must not take the supervisor down
                log.exception("supervisor request failed")
                answer = {"error": {"type": "Error", "message": f"the supervisor failed: {exc}"}}
            try:
                self._send(answer)
            except OSError:
                pass

        def _send(self, message: dict[str, Any]) -> None:
            self.wfile.write(wire.dump(message))
            self.wfile.flush()

    return Handler


def run(settings: Settings) -> None:
    Supervisor(settings).serve()
