"""``moorage marketplace [SERVICE]``: what services can be created, on which plans."""

from __future__ import annotations

import click

from moorage.cli.client import Client
from moorage.cli.options import json_option, print_json, print_table


@click.command("marketplace")
@click.argument("service", required=False)
@click.option("--broker", help="The broker, when several offer SERVICE.")
@json_option
def marketplace(service: str | None, broker: str | None, as_json: bool) -> None:
    """List the offerings and plans of every broker, or one SERVICE in detail."""
    client = Client.from_profile()
    if service is None:
        data = client.get("/v2/marketplace")
        if as_json:
            print_json(data)
            return
        for warning in data["warnings"]:
            click.echo(f"warning: {warning}", err=True)
        print_table(
            ["Service", "Plans", "Bindable", "Broker", "Description"],
            [
                (
                    o["name"],
                    ", ".join(p["name"] for p in o["plans"]),
                    "yes" if o["bindable"] else "no",
                    o["broker"],
                    o["description"],
                )
                for o in data["results"]
            ],
        )
        return
    data = client.get(f"/v2/marketplace/{service}", **({"broker": broker} if broker else {}))
    if as_json:
        print_json(data)
        return
    click.echo(f"{data['name']} (broker {data['broker']}): {data['description']}")
    click.echo(
        f"Bindable: {'yes' if data['bindable'] else 'no'}; config vars: {', '.join(data['config_vars'])}"
    )
    for plan in data["plans"]:
        click.echo(f"\nPlan {plan['name']}: {plan['description']}")
        click.echo(
            f"  bindable: {'yes' if plan['bindable'] else 'no'}, free: {'yes' if plan['free'] else 'no'}"
        )
        for action in ("create", "update", "bind"):
            schema = plan["parameters"].get(action)
            props = (schema or {}).get("properties") or {}
            if props:
                click.echo(f"  {action} parameters:")
                for key, spec in props.items():
                    kind = spec.get("type", "any")
                    click.echo(f"    {key} ({kind}): {spec.get('description', '')}".rstrip(": "))


commands = [marketplace]
