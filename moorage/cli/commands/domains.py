"""``moorage domains[:add|:remove]``: custom domains routed to an app."""

from __future__ import annotations

import click

from moorage.cli.client import Client
from moorage.cli.options import app_option, json_option, print_json, resolve_app


@click.command("domains")
@app_option
@json_option
def list_domains(app: str | None, as_json: bool) -> None:
    """List the app's custom domains (it always answers at <app>.<base domain> too)."""
    client = Client.from_profile()
    name = resolve_app(app)
    domains = client.get(f"/v2/apps/{name}/domains")["results"]
    if as_json:
        print_json(domains)
    else:
        click.echo(f"{client.get(f'/v2/apps/{name}')['url']} (built in)")
        for domain in domains:
            click.echo(domain)


@click.command("domains:add")
@click.argument("domain")
@app_option
def add(domain: str, app: str | None) -> None:
    """Route DOMAIN to the app."""
    client = Client.from_profile()
    name = resolve_app(app)
    added = client.post(f"/v2/apps/{name}/domains", {"domain": domain})["domain"]
    click.echo(f"Added {added} to {name}")


@click.command("domains:remove")
@click.argument("domain")
@app_option
def remove(domain: str, app: str | None) -> None:
    """Stop routing DOMAIN to the app."""
    client = Client.from_profile()
    name = resolve_app(app)
    client.delete(f"/v2/apps/{name}/domains/{domain}")
    click.echo(f"Removed {domain} from {name}")


commands = [list_domains, add, remove]
