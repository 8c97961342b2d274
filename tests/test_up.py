"""``moorage up`` as a user runs it: one command, then the CLI against what it printed.

Starts ``moorage up`` in a subprocess on free ports with a fresh data dir, waits for its
banner, registers, deploys the echo app through the CLI, requests it through the
router, checks the broker answers with the generated password, then sends Ctrl-C
(SIGINT) and checks that everything it started has stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from moorage.cli.main import cli
from moorage.embedded.ports import free_port, port_answers
from moorage.platform.runtime import supervised
from moorage.settings import Settings
from tests.fixtures.router import Load
from tests.fixtures.servers import make_server_dir
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_up_runs_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    data_dir = make_server_dir("moorage-up-")
    ports = {"broker": free_port(), "controller": free_port(), "router": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update(
        MOORAGE_DATA_DIR=str(data_dir),
        MOORAGE_BROKER_PORT=str(ports["broker"]),
        MOORAGE_PLATFORM_PORT=str(ports["controller"]),
        MOORAGE_PLATFORM_ROUTER_PORT=str(ports["router"]),
    )
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moorage.cli.main", "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _await(lambda: "Moorage is up." in log.read_text(), 120, log)
        banner = log.read_text()
        controller = f"http://127.0.0.1:{ports['controller']}"
        assert controller in banner and "broker-password" in banner

        home = tmp_path / "home"
        cli_env = {"HOME": str(home), "MOORAGE_URL": controller}
        runner = CliRunner()
        app_dir = tmp_path / "echo"
        shutil.copytree(ROOT / "tests" / "apps" / "echo", app_dir)
        old = os.getcwd()
        os.chdir(app_dir)  # as a user would: apps:create remembers the app in ./.moorage
        try:
            result = runner.invoke(
                cli, ["register", controller, "--username", "alice", "--password", "wonderland1"], env=cli_env
            )
            assert result.exit_code == 0, result.output
            assert runner.invoke(cli, ["apps:create", "hello"], env=cli_env).exit_code == 0
            deployed = runner.invoke(cli, ["deploy"], env=cli_env)
        finally:
            os.chdir(old)
        assert deployed.exit_code == 0, deployed.output
        resp = httpx.get(f"http://127.0.0.1:{ports['router']}/", headers={"Host": "hello.moorage.localhost"})
        assert resp.status_code == 200

        password = (data_dir / "broker-password").read_text().strip()
        catalog = httpx.get(
            f"http://127.0.0.1:{ports['broker']}/v2/catalog",
            auth=("moorage", password),
            headers={"X-Broker-API-Version": "2.17"},
        )
        assert {s["name"] for s in catalog.json()["services"]} >= {"postgresql", "redis"}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
    assert "stopped" in log.read_text()
    for name, port in ports.items():
        assert not port_answers(port), f"{name} still answers on {port} after Ctrl-C"


def _await(condition, timeout: float, log: Path) -> None:  # type: ignore[no-untyped-def]
    try:
        wait_for(condition, timeout, interval=0.1)
    except AssertionError:
        raise AssertionError(f"timed out; output:\n{log.read_text()}") from None


def _up(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moorage.cli.main", "up", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc


@pytest.mark.slow
def test_up_keep_apps_restart_loses_no_request(tmp_path: Path) -> None:
    """An upgrade: Ctrl-C of ``up --keep-apps`` and a new ``up`` while a client keeps asking."""
    data_dir = make_server_dir("moorage-up-keep-")
    ports = {"broker": free_port(), "controller": free_port(), "router": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update(
        MOORAGE_DATA_DIR=str(data_dir),
        MOORAGE_BROKER_PORT=str(ports["broker"]),
        MOORAGE_PLATFORM_PORT=str(ports["controller"]),
        MOORAGE_PLATFORM_ROUTER_PORT=str(ports["router"]),
    )
    log = tmp_path / "up.log"
    proc = _up(env, log, "--keep-apps")
    second = None
    try:
        _await(lambda: log.read_text().count("Moorage is up.") == 1, 120, log)
        controller = f"http://127.0.0.1:{ports['controller']}"
        cli_env = {"HOME": str(tmp_path / "home"), "MOORAGE_URL": controller}
        runner = CliRunner()
        app_dir = tmp_path / "echo"
        shutil.copytree(ROOT / "tests" / "apps" / "echo", app_dir)
        old = os.getcwd()
        os.chdir(app_dir)
        try:
            for args in (
                ["register", controller, "--username", "alice", "--password", "wonderland1"],
                ["apps:create", "hello"],
                ["deploy"],
            ):
                result = runner.invoke(cli, args, env=cli_env)
                assert result.exit_code == 0, result.output
        finally:
            os.chdir(old)
        pid = httpx.get(f"http://127.0.0.1:{ports['router']}/", headers={"Host": "hello.moorage.localhost"})
        with Load(ports["router"], "hello.moorage.localhost", keep_alive=True) as load:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)
            assert not port_answers(ports["controller"])
            second = _up(env, log, "--keep-apps")
            _await(lambda: log.read_text().count("Moorage is up.") == 2, 120, log)
        assert load.failures == []
        assert {a["pid"] for a in load.answers} == {pid.json()["pid"]}  # the same process throughout
        assert "apps and the router keep running" in log.read_text()
    finally:
        for p in (proc, second):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
                p.wait(60)
        supervised.stop(Settings(data_dir=data_dir))
