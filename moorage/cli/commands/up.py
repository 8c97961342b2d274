"""``moorage up`` (everything on the embedded defaults), ``moorage controller``, ``moorage supervisor``.

Why ``up`` supervises child processes rather than running everything in one: the broker
and the controller are each served by gunicorn, which owns its process's signals and
workers. ``up`` starts the embedded PostgreSQL and Redis once, then the supervisor
(app processes and the nginx router, detached so they outlive everything else; see
``runtime.daemon``), the broker (with its operation workers) and the controller as
children, prints where everything is, and on Ctrl-C stops them in order. With
``--keep-apps`` Ctrl-C leaves the supervisor (and with it every app and the router)
running: that is how Moorage is upgraded without downtime, and the next ``moorage up``
finds the apps where they are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import httpx

from moorage.cli.commands.server import _settings
from moorage.errors import ConfigurationError
from moorage.logs import configure
from moorage.settings import Settings


@click.command("controller")
def controller() -> None:
    """Serve the platform's controller API with the runtime MOORAGE_PLATFORM_RUNTIME names.

    ``local`` (the default) brings the nginx router; ``kubernetes`` runs apps on the cluster.
    """
    from moorage.platform.server import serve

    settings = _settings()
    configure(settings.log_level)
    p = settings.platform
    where = f"router on port {p.router_port}" if p.runtime == "local" else f"apps on {p.runtime}"
    click.echo(f"moorage controller on http://{p.host}:{p.port}; {where}")
    try:
        serve(settings, build_environ=dict(os.environ))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("supervisor")
def supervisor() -> None:
    """Own the app processes and the router for the data dir (started by the controller when missing)."""
    from moorage.platform.runtime.daemon import run
    from moorage.platform.server import prepare_data_dir

    settings = _settings()
    configure(settings.log_level)
    prepare_data_dir(settings.data_dir)
    try:
        run(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("up")
@click.option("--ready-timeout", default=120.0, show_default=True, help="Seconds to wait for the servers.")
@click.option(
    "--keep-apps",
    is_flag=True,
    help="On Ctrl-C stop the broker and controller only; apps and the router keep serving (upgrades).",
)
def up(ready_timeout: float, keep_apps: bool) -> None:
    """Run Moorage on one machine: broker, worker, controller, router and runtime."""
    from moorage.broker.embedded import start_embedded
    from moorage.catalog.loader import load_catalog
    from moorage.platform.runtime import supervised
    from moorage.platform.server import prepare_data_dir

    settings = _settings()
    configure(settings.log_level)
    try:
        prepare_data_dir(settings.data_dir)
        catalog = load_catalog(settings.catalog_dirs)
        click.echo("==> starting the embedded PostgreSQL, Redis and MariaDB (when the catalog needs them)")
        settings, servers = start_embedded(settings, catalog)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    env = _child_env(settings)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if settings.platform.runtime == "local":
            click.echo("==> starting the supervisor (apps and router)")
            supervised.ensure_running(settings, env=env)
        for name in ("broker", "controller"):
            children.append((name, _spawn(name, env)))
        broker_url = f"http://{settings.broker.host}:{settings.broker.port}"
        controller_url = f"http://{settings.platform.host}:{settings.platform.port}"
        _await_ready({"broker": broker_url, "controller": controller_url}, children, ready_timeout)
        password_hint = (
            "MOORAGE_BROKER_PASSWORD"
            if settings.broker.password
            else str(settings.data_dir / "broker-password")
        )
        _print_banner(settings, controller_url, broker_url, password_hint)
        while not stop.is_set():
            for name, proc in children:
                if proc.poll() is not None:
                    raise click.ClickException(
                        f"the {name} exited with status {proc.returncode}; see its output above"
                    )
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        click.echo("==> stopping")
        for _, proc in reversed(children):
            _terminate(proc)
        if keep_apps:
            click.echo("==> apps and the router keep running (--keep-apps)")
        elif settings.platform.runtime == "local":
            supervised.stop(settings)
        for server in servers:
            server.stop()
        click.echo("==> stopped")


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["MOORAGE_DATA_DIR"] = str(settings.data_dir)
    if settings.services.postgres_admin_url:
        env["MOORAGE_SERVICES_POSTGRES_ADMIN_URL"] = settings.services.postgres_admin_url
    if settings.services.redis_admin_url:
        env["MOORAGE_SERVICES_REDIS_ADMIN_URL"] = settings.services.redis_admin_url
    if settings.services.mysql_admin_url:
        env["MOORAGE_SERVICES_MYSQL_ADMIN_URL"] = settings.services.mysql_admin_url
    return env


def _spawn(name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "moorage.cli.main", name], env=env, start_new_session=True)


def _await_ready(
    urls: dict[str, str], children: list[tuple[str, subprocess.Popen[bytes]]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    with httpx.Client(timeout=1.0) as client:
        while pending:
            for name, proc in children:
                if proc.poll() is not None:
                    raise click.ClickException(f"the {name} exited during start-up; see its output above")
            for name, url in list(pending.items()):
                try:
                    if client.get(url + "/healthz").status_code == 200:
                        del pending[name]
                except httpx.TransportError:
                    pass
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{', '.join(pending)} did not become ready within {timeout:.0f} s"
                )
            time.sleep(0.1)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _print_banner(settings: Settings, controller_url: str, broker_url: str, password_hint: str) -> None:
    domain = settings.platform.base_domain
    port = settings.platform.router_port
    click.echo(
        f"""
Moorage is up.

  controller API   {controller_url}
  apps             http://<app>.{domain}:{port}
  OSB broker       {broker_url}  (user {settings.broker.username}, password in {password_hint})
  data             {Path(settings.data_dir)}

Next:
  moorage register {controller_url:<31}# the first user is the admin
  moorage apps:create myapp
  moorage deploy -a myapp                      # from a directory with a Procfile or a buildpack app
  curl http://myapp.{domain}:{port}/

Ctrl-C stops everything (with --keep-apps: all but the apps and the router).
"""
    )


commands = [controller, supervisor, up]
