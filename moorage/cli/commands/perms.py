"""``moorage perms[:add|:remove]``: share an app with other users."""

from __future__ import annotations

import click

from moorage.cli.client import Client
from moorage.cli.options import app_option, json_option, print_json, resolve_app


@click.command("perms")
@app_option
@json_option
def list_perms(app: str | None, as_json: bool) -> None:
    """List the users an app is shared with."""
    client = Client.from_profile()
    users = client.get(f"/v2/apps/{resolve_app(app)}/perms")["users"]
    if as_json:
        print_json(users)
    elif not users:
        click.echo("Not shared with anyone")
    else:
        for user in users:
            click.echo(user)


@click.command("perms:add")
@click.argument("username")
@app_option
def add(username: str, app: str | None) -> None:
    """Share the app with USERNAME."""
    client = Client.from_profile()
    name = resolve_app(app)
    client.post(f"/v2/apps/{name}/perms", {"username": username})
    click.echo(f"Shared {name} with {username}")


@click.command("perms:remove")
@click.argument("username")
@app_option
def remove(username: str, app: str | None) -> None:
    """Stop sharing the app with USERNAME."""
    client = Client.from_profile()
    name = resolve_app(app)
    client.delete(f"/v2/apps/{name}/perms/{username}")
    click.echo(f"Stopped sharing {name} with {username}")


commands = [list_perms, add, remove]
