"""``moorage logs [-f] [-n N]``: app output and platform events."""

from __future__ import annotations

import click

from moorage.cli.client import Client
from moorage.cli.options import app_option, resolve_app


@click.command("logs")
@app_option
@click.option("-n", "--num", "lines", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
def logs(app: str | None, lines: int, follow: bool) -> None:
    """Show the app's recent log lines, tagged app[web.1] or moorage[deploy]."""
    client = Client.from_profile()
    name = resolve_app(app)
    params = {"lines": lines, "follow": "1" if follow else "0"}
    try:
        for line in client.stream_text(f"/v2/apps/{name}/logs", params):
            click.echo(line)
    except KeyboardInterrupt:
        pass


commands = [logs]
