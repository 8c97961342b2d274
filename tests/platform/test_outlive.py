"""Apps and the router outlive the controller (issue 12): real processes, real nginx.

Each test runs ``moorage controller`` as a real process on a fresh data dir; it starts
``moorage supervisor`` (which owns the apps and the router), and the CLI deploys the
rt_echo app with two web processes. Client threads then load the router while the
controller is killed (SIGKILL of its whole process group) or stopped (SIGTERM, as an
upgrade does): no request may fail, an app process that crashes meanwhile is restarted
by the supervisor, and a new controller finds the same processes (pids and kernel start
times) and the log lines written while it was down. SIGKILL of the broker changes
nothing the apps serve. Certificates added through this controller are served by the
supervisor's router, and stay served while no controller runs.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509

from moorage.cli.main import cli
from moorage.embedded.ports import free_port
from moorage.platform.runtime import supervised
from moorage.settings import Settings
from tests.platform.test_router_load import Load
from tests.platform.test_router_tls import key_pem, make_ca, make_leaf, pem
from tests.polling import wait_for

APP_DIR = Path(__file__).resolve().parent.parent / "apps" / "rt_echo"
HOST = "load.moorage.localhost"
DOMAIN = "www.load.example"


class Stack:
    """A data dir, its controller process (started and killed at will) and a CLI user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.port, self.router_port, self.https_port = free_port(), free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        self.env.update(
            MOORAGE_DATA_DIR=str(self.data_dir),
            MOORAGE_PLATFORM_PORT=str(self.port),
            MOORAGE_PLATFORM_ROUTER_PORT=str(self.router_port),
            MOORAGE_PLATFORM_ROUTER_HTTPS_PORT=str(self.https_port),
            MOORAGE_PLATFORM_STOP_GRACE_SECONDS="2",
            MOORAGE_PLATFORM_RESTART_BACKOFF_SECONDS="0.2",
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.controller: subprocess.Popen[bytes] | None = None
        self.cli_env = {"HOME": str(root / "home"), "MOORAGE_URL": self.url}
        self.token = ""

    def start_controller(self) -> None:
        log = (self.root / "controller.log").open("ab")
        self.controller = subprocess.Popen(
            [sys.executable, "-m", "moorage.cli.main", "controller"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(self._healthy, 90, interval=0.1, what="the controller to answer")

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill_controller(self, sig: signal.Signals) -> None:
        assert self.controller is not None
        os.killpg(self.controller.pid, sig)
        self.controller.wait(30)

    def cli(self, *args: str) -> str:
        old = os.getcwd()
        os.chdir(self.root / "app")
        try:
            result = CliRunner().invoke(cli, list(args), env=self.cli_env)
        finally:
            os.chdir(old)
        assert result.exit_code == 0, result.output
        return result.output

    def deploy(self) -> None:
        shutil.copytree(APP_DIR, self.root / "app")
        self.cli("register", self.url, "--username", "alice", "--password", "wonderland1")
        self.cli("apps:create", "load")
        self.cli("deploy")
        self.cli("scale", "web=2")

    def api(self, path: str) -> httpx.Response:
        r = httpx.post(
            self.url + "/v2/auth/login", json={"username": "alice", "password": "wonderland1"}, timeout=10
        )
        headers = {"Authorization": f"token {r.json()['token']}"}
        return httpx.get(self.url + path, headers=headers, timeout=30)

    def ps(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.api("/v2/apps/load/pods").json()["results"] if p["type"] == "web"}

    def close(self) -> None:
        if self.controller is not None and self.controller.poll() is None:
            self.kill_controller(signal.SIGKILL)
        supervised.stop(Settings(data_dir=self.data_dir))


@pytest.fixture
def stack() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="moorage-outlive-"))
    root.chmod(0o755)
    s = Stack(root)
    s.start_controller()
    s.deploy()
    yield s
    s.close()
    shutil.rmtree(root, ignore_errors=True)


def start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (what ``ps -o lstart`` shows)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "new-connections"])
def test_sigkill_of_the_controller_loses_no_request_and_a_new_one_readopts(
    stack: Stack, keep_alive: bool
) -> None:
    before = stack.ps()
    starts = {name: start_time(p["pid"]) for name, p in before.items()}
    with Load(stack.router_port, HOST, keep_alive) as load:
        stack.kill_controller(signal.SIGKILL)
    assert load.failures == []

    # While no controller runs, web.1 crashes: the supervisor restarts it and logs it.
    log_file = stack.data_dir / "logs" / "load.log"
    os.killpg(before["web.1"]["pid"], signal.SIGKILL)
    wait_for(lambda: "Restarting (restart 1)" in log_file.read_text(), what="the restart")
    wait_for(lambda: log_file.read_text().count("listening on") >= 3, what="web.1 to listen again")

    stack.start_controller()
    after = stack.ps()
    assert after["web.2"]["pid"] == before["web.2"]["pid"]
    assert after["web.2"]["started"] == before["web.2"]["started"]
    assert start_time(after["web.2"]["pid"]) == starts["web.2"]
    assert after["web.1"]["pid"] != before["web.1"]["pid"] and after["web.1"]["restarts"] == 1
    assert all(p["state"] == "up" for p in after.values())
    text = stack.api("/v2/apps/load/logs?lines=200").text
    assert "moorage[web.1]: Restarting (restart 1)" in text
    restarted = text[text.index("Restarting (restart 1)") :]
    assert "app[web.1]: listening on" in restarted
    answered = httpx.get(f"http://127.0.0.1:{stack.router_port}/", headers={"Host": HOST}, timeout=10)
    assert answered.status_code == 200


def test_a_restarted_controller_keeps_the_apps_serving(stack: Stack) -> None:
    """An upgrade: SIGTERM stops the controller; apps and router keep serving; a new one takes over."""
    before = stack.ps()
    with Load(stack.router_port, HOST, keep_alive=True) as load:
        stack.kill_controller(signal.SIGTERM)
        stack.start_controller()
    assert load.failures == []
    after = stack.ps()
    assert {n: (p["pid"], p["started"]) for n, p in after.items()} == {
        n: (p["pid"], p["started"]) for n, p in before.items()
    }
    stack.cli("scale", "web=1")  # the new controller drives the processes it found
    assert list(stack.ps()) == ["web.1"]


def test_sigkill_of_the_broker_leaves_the_apps_serving(stack: Stack) -> None:
    port = free_port()
    log = (stack.root / "broker.log").open("ab")
    broker = subprocess.Popen(
        [sys.executable, "-m", "moorage.cli.main", "broker"],
        env={**stack.env, "MOORAGE_BROKER_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, 90, interval=0.1, what="the broker to answer")
        before = stack.ps()
        with Load(stack.router_port, HOST, keep_alive=True) as load:
            os.killpg(broker.pid, signal.SIGKILL)
            broker.wait(30)
        assert load.failures == []
        assert stack.ps() == before
    finally:
        if broker.poll() is None:
            os.killpg(broker.pid, signal.SIGKILL)
            broker.wait(30)


def https_get(port: int, sni: str, ca: x509.Certificate) -> tuple[int, x509.Certificate]:
    """One verified HTTPS request for ``sni`` (SNI and Host): its status and the leaf served."""
    context = ssl.create_default_context(cadata=pem(ca).decode())
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    conn.sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=sni
    )
    try:
        conn.request("GET", "/", headers={"Host": sni})
        status = conn.getresponse().status
        return status, x509.load_der_x509_certificate(conn.sock.getpeercert(binary_form=True))
    finally:
        conn.close()


def test_certificates_reach_the_supervisors_router_and_outlive_the_controller(stack: Stack) -> None:
    ca_key, ca = make_ca()
    key, leaf = make_leaf(ca_key, ca, DOMAIN)
    (stack.root / "app" / "server.crt").write_bytes(pem(leaf))
    (stack.root / "app" / "server.key").write_bytes(key_pem(key))
    stack.cli("domains:add", DOMAIN)
    assert DOMAIN in stack.cli("certs:add", "server.crt", "server.key")
    assert https_get(stack.https_port, DOMAIN, ca) == (200, leaf)

    stack.kill_controller(signal.SIGKILL)
    assert https_get(stack.https_port, DOMAIN, ca) == (200, leaf)
