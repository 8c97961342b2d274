"""SupervisedRuntime: the controller's side of ``moorage supervisor``.

Why a client: app processes and the router belong to the supervisor process (see
``daemon``), so they outlive the controller. The controller keeps the Runtime
interface and talks to the supervisor over its unix socket, one connection per call;
when none answers it starts one (detached, its own session) and waits for it. A
controller that starts while a supervisor runs finds the apps where they are: same
processes, ports and start times.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from moorage.errors import ConfigurationError, Error
from moorage.platform.router.config import SniCertificate
from moorage.platform.runtime import wire
from moorage.platform.runtime.base import (
    LogLine,
    ProcessStatus,
    Progress,
    ReleaseSpec,
    RunResult,
    Runtime,
    TlsSink,
)
from moorage.platform.runtime.daemon import folder, socket_path
from moorage.settings import Settings

#: How long a new supervisor may take to start the router and answer.
START_TIMEOUT = 60.0


class SupervisedRuntime(Runtime):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tls = _TlsSink(self)

    # -- the Runtime interface -------------------------------------------------------------

    def deploy(self, release: ReleaseSpec, formation: Mapping[str, int], progress: Progress) -> None:
        self.call("deploy", {"release": wire.release_to(release), "formation": dict(formation)}, progress)

    def scale(self, app: str, formation: Mapping[str, int], progress: Progress) -> None:
        self.call("scale", {"app": app, "formation": dict(formation)}, progress)

    def restart(self, app: str, process_type: str | None, progress: Progress) -> None:
        self.call("restart", {"app": app, "process_type": process_type}, progress)

    def status(self, app: str) -> list[ProcessStatus]:
        return [wire.status_from(s) for s in self.call("status", {"app": app})]

    def logs(self, app: str, lines: int = 100, follow: bool = False) -> Iterator[LogLine]:
        for message in self._stream("logs", {"app": app, "lines": lines, "follow": follow}):
            if "line" in message:
                yield wire.line_from(message["line"])

    def run_once(self, release: ReleaseSpec, command: str, timeout: float = 600.0) -> RunResult:
        args = {"release": wire.release_to(release), "command": command, "timeout": timeout}
        result = self.call("run_once", args)
        return RunResult(result["exit_code"], result["output"])

    def destroy(self, app: str) -> None:
        self.call("destroy", {"app": app})

    def close(self) -> None:
        """Nothing to stop: the supervisor and its apps keep running without the controller."""

    # -- custom domains, crash loops, certificates -----------------------------------------

    @property
    def tls_sink(self) -> TlsSink:
        """The supervisor's router, over the socket."""
        return self._tls

    def set_domains(self, app: str, domains: Iterable[str]) -> None:
        self.call("set_domains", {"app": app, "domains": list(domains)})

    def crashed_release(self, app: str) -> int | None:
        result = self.call("crashed_release", {"app": app})
        return int(result) if result is not None else None

    # -- the socket ------------------------------------------------------------------------

    def call(self, op: str, args: dict[str, Any], progress: Progress | None = None) -> Any:
        """One request; progress lines go to ``progress``; returns the answer or raises its error."""
        for message in self._stream(op, args):
            if "progress" in message and progress is not None:
                progress(message["progress"])
            elif "ok" in message:
                return message["ok"]
        raise Error(f"the supervisor closed the connection during {op}")

    def _stream(self, op: str, args: dict[str, Any]) -> Iterator[dict[str, Any]]:
        sock = self._connect()
        try:
            sock.sendall(wire.dump({"op": op, "args": args}))
            with sock.makefile("rb") as reader:
                for raw in reader:
                    message = wire.load(raw)
                    if "error" in message:
                        raise wire.error_from(message["error"])
                    yield message
                    if "ok" in message:
                        return
        except OSError as exc:
            raise Error(f"the supervisor did not answer {op}: {exc}") from None
        finally:
            sock.close()

    def _connect(self) -> socket.socket:
        try:
            return _open(self.settings)
        except OSError:
            pass
        ensure_running(self.settings)
        return _open(self.settings)


class _TlsSink:
    """The router's ``set_tls`` as the controller's certificate code calls it, sent to the supervisor."""

    def __init__(self, runtime: SupervisedRuntime) -> None:
        self._runtime = runtime

    def https_refusal(self) -> str | None:
        refusal = self._runtime.call("https_refusal", {})
        return str(refusal) if refusal else None

    def set_tls(self, app: str, certs: Sequence[SniCertificate], force_https: bool) -> None:
        body = [{"hosts": list(c.hosts), "cert": c.cert_pem, "key": c.key_pem} for c in certs]
        self._runtime.call("set_tls", {"app": app, "certs": body, "force_https": force_https})


def _open(settings: Settings) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(socket_path(settings.data_dir)))
    except OSError:
        sock.close()
        raise
    return sock


def ensure_running(
    settings: Settings, env: Mapping[str, str] | None = None, timeout: float = START_TIMEOUT
) -> int:
    """Start ``moorage supervisor`` detached unless one answers; return its pid.

    It reads its settings from ``env`` (``os.environ`` by default), as the controller does.
    """
    pid = _ping(settings)
    if pid is not None:
        return pid
    here = folder(settings.data_dir)
    here.mkdir(parents=True, exist_ok=True, mode=0o700)
    here.chmod(0o700)
    env = dict(os.environ if env is None else env, MOORAGE_DATA_DIR=str(settings.data_dir))
    with open(here / "supervisor.log", "ab") as out:
        os.chmod(here / "supervisor.log", 0o600)
        process = subprocess.Popen(
            [sys.executable, "-m", "moorage.cli.main", "supervisor"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = _ping(settings)
        if pid is not None:
            return pid
        if process.poll() is not None and process.returncode != 0:
            tail = (here / "supervisor.log").read_text(errors="replace").splitlines()[-5:]
            raise ConfigurationError(
                f"the supervisor exited with status {process.returncode}: {' | '.join(tail) or 'no output'}"
            )
        time.sleep(0.05)
    raise ConfigurationError(
        f"the supervisor did not answer within {timeout:.0f}s (see {here}/supervisor.log)"
    )


def _ping(settings: Settings) -> int | None:
    try:
        sock = _open(settings)
    except OSError:
        return None
    try:
        sock.settimeout(5.0)
        sock.sendall(wire.dump({"op": "ping", "args": {}}))
        with sock.makefile("rb") as reader:
            return int(wire.load(reader.readline())["ok"]["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        sock.close()


def stop(settings: Settings, timeout: float = 60.0) -> bool:
    """SIGTERM the supervisor (it stops its apps and router); wait until it is gone."""
    pid = _ping(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
