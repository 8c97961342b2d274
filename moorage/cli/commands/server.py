"""Server commands: ``moorage broker`` and ``moorage worker`` (``moorage up`` lives in up.py).

Why here: these are entry points, the only places that read ``MOORAGE_*`` settings
from the environment.
"""

from __future__ import annotations

import signal
import threading

import click

from moorage.errors import ConfigurationError
from moorage.logs import configure
from moorage.settings import Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("broker")
@click.option("--no-worker", is_flag=True, help="Leave operations to a separate `moorage worker`.")
def broker(no_worker: bool) -> None:
    """Serve the OSB API (gunicorn) with its operation worker threads."""
    from moorage.broker.server import serve

    settings = _settings()
    configure(settings.log_level)
    b = settings.broker
    click.echo(
        f"moorage broker on http://{b.host}:{b.port} (user {b.username}; "
        f"password: MOORAGE_BROKER_PASSWORD or {settings.data_dir / 'broker-password'})"
    )
    try:
        serve(settings, with_worker=not no_worker)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("worker")
def worker() -> None:
    """Run durable operations from the state database (no HTTP)."""
    from moorage.broker.app import BrokerRuntime

    settings = _settings()
    configure(settings.log_level)
    if settings.worker.threads < 1:
        raise click.ClickException("MOORAGE_WORKER_THREADS must be at least 1 for `moorage worker`")
    try:
        runtime = BrokerRuntime.start(settings, with_worker=True)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"moorage worker running {settings.worker.threads} thread(s); Ctrl-C stops it")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()


commands = [broker, worker]
