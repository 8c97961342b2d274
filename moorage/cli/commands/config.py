"""``moorage config[:set|:unset|:get]``: config vars; each change is a new release."""

from __future__ import annotations

import shlex

import click

from moorage.cli.client import Client, CliError
from moorage.cli.options import (
    app_option,
    json_option,
    parse_assignments,
    print_json,
    print_table,
    resolve_app,
)


@click.command("config")
@app_option
@json_option
@click.option("--shell", is_flag=True, help="Print KEY=value lines for a .env file.")
@click.option("--reveal", is_flag=True, help="Show values that bound services provide (masked otherwise).")
def show(app: str | None, as_json: bool, shell: bool, reveal: bool) -> None:
    """Show the app's config vars."""
    client = Client.from_profile()
    params = {"reveal": "1"} if reveal else {}
    values = client.get(f"/v2/apps/{resolve_app(app)}/config", **params)["values"]
    if as_json:
        print_json(values)
    elif shell:
        for key, value in sorted(values.items()):
            click.echo(f"{key}={shlex.quote(value)}")
    elif not values:
        click.echo("No config vars")
    else:
        print_table(["Key", "Value"], sorted(values.items()))


def _change(app: str | None, values: dict[str, str | None], as_json: bool, force: bool = False) -> None:
    client = Client.from_profile()
    name = resolve_app(app)
    body: dict[str, object] = {"values": values, **({"force": True} if force else {})}
    result = client.post(f"/v2/apps/{name}/config", body)
    if as_json:
        print_json(result)
        return
    release = result["release"]
    click.echo(f"{release['summary']} -> {name} v{release['version']}")


@click.command("config:set")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@app_option
@json_option
@click.option("--force", is_flag=True, help="Also override vars a bound service provides.")
def set_(pairs: tuple[str, ...], app: str | None, as_json: bool, force: bool) -> None:
    """Set config vars (a new release, deployed if the app has a build)."""
    _change(app, dict(parse_assignments(pairs, "KEY=VALUE")), as_json, force)


@click.command("config:unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@app_option
@json_option
@click.option("--force", is_flag=True, help="Also remove vars a bound service provides.")
def unset(keys: tuple[str, ...], app: str | None, as_json: bool, force: bool) -> None:
    """Remove config vars (a new release)."""
    _change(app, dict.fromkeys(keys), as_json, force)


@click.command("config:get")
@click.argument("key")
@app_option
def get(key: str, app: str | None) -> None:
    """Print one config var's value."""
    client = Client.from_profile()
    name = resolve_app(app)
    values = client.get(f"/v2/apps/{name}/config", reveal="1")["values"]
    if key not in values:
        raise CliError(f"{name} has no config var {key}")
    click.echo(values[key])


commands = [show, set_, unset, get]
