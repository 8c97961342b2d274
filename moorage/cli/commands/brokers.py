"""``moorage brokers[:add|:remove|:refresh]``: the service brokers the platform uses (admins)."""

from __future__ import annotations

import click

from moorage.cli.client import Client
from moorage.cli.options import json_option, print_json, print_table


@click.command("brokers")
@json_option
def list_brokers(as_json: bool) -> None:
    """List registered service brokers."""
    items = Client.from_profile().get("/v2/brokers")["results"]
    if as_json:
        print_json(items)
        return
    print_table(
        ["Name", "URL", "Services", "Instances", "Catalog fetched"],
        [
            (
                b["name"] + (" (built-in)" if b["builtin"] else ""),
                b["url"],
                ", ".join(b["services"]),
                b["instances"],
                b["fetched"] or "never",
            )
            for b in items
        ],
    )


@click.command("brokers:add")
@click.argument("name")
@click.argument("url")
@click.option("--username", required=True, help="The broker's basic-auth user.")
@click.option("--password", required=True, prompt=True, hide_input=True, help="The broker's password.")
@json_option
def add(name: str, url: str, username: str, password: str, as_json: bool) -> None:
    """Register a service broker (its catalog is fetched now)."""
    body = {"name": name, "url": url, "username": username, "password": password}
    result = Client.from_profile().post("/v2/brokers", body)
    if as_json:
        print_json(result)
    else:
        click.echo(f"Registered {name}: {', '.join(result['services']) or 'no services'}")


@click.command("brokers:remove")
@click.argument("name")
def remove(name: str) -> None:
    """Unregister a broker (refused while it has service instances)."""
    Client.from_profile().delete(f"/v2/brokers/{name}")
    click.echo(f"Removed broker {name}")


@click.command("brokers:refresh")
@click.argument("name")
@json_option
def refresh(name: str, as_json: bool) -> None:
    """Fetch a broker's catalog again."""
    result = Client.from_profile().post(f"/v2/brokers/{name}/refresh")
    if as_json:
        print_json(result)
    else:
        state = "changed" if result["changed"] else "unchanged"
        click.echo(f"Catalog of {name} {state}: {', '.join(result['services'])}")


commands = [list_brokers, add, remove, refresh]
