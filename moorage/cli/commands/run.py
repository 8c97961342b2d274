"""``moorage run CMD``: a one-off command in the app's environment; exits with its code."""

from __future__ import annotations

import click

from moorage.cli.client import Client
from moorage.cli.options import app_option, json_option, print_json, resolve_app


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@app_option
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(app: str | None, as_json: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND once with the current release's files and config."""
    client = Client.from_profile()
    result = client.post(f"/v2/apps/{resolve_app(app)}/run", {"command": " ".join(command)})
    if as_json:
        print_json(result)
    else:
        click.echo(result["output"], nl=False)
    raise SystemExit(result["exit_code"])


commands = [run]
