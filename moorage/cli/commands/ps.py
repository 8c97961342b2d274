"""``moorage scale``, ``moorage ps[:restart]``: the processes of an app."""

from __future__ import annotations

import click

from moorage.cli.client import Client
from moorage.cli.options import (
    app_option,
    json_option,
    parse_assignments,
    print_json,
    print_table,
    resolve_app,
)


@click.command("ps")
@app_option
@json_option
def ps(app: str | None, as_json: bool) -> None:
    """List the app's processes: type, state, release, start time, restarts."""
    client = Client.from_profile()
    rows = client.get(f"/v2/apps/{resolve_app(app)}/pods")["results"]
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo("No processes running")
    else:
        print_table(
            ["Process", "State", "Release", "Started", "Restarts"],
            [
                (
                    p["name"],
                    p["state"],
                    p["release"],
                    (p["started"] or "")[:19].replace("T", " "),
                    p["restarts"],
                )
                for p in rows
            ],
        )


@click.command("scale")
@click.argument("pairs", nargs=-1, required=True, metavar="TYPE=COUNT...")
@app_option
@json_option
def scale(pairs: tuple[str, ...], app: str | None, as_json: bool) -> None:
    """Set how many processes of each type run, e.g. `moorage scale web=3 worker=1`."""
    counts: dict[str, int] = {}
    for ptype, raw in parse_assignments(pairs, "TYPE=COUNT").items():
        if not raw.isdigit():
            raise click.UsageError(f"{ptype}={raw}: the count must be a whole number from 0 to 100")
        counts[ptype] = int(raw)
    client = Client.from_profile()
    name = resolve_app(app)
    result = client.post(f"/v2/apps/{name}/scale", counts)
    if as_json:
        print_json(result)
    else:
        click.echo(f"Scaled {name}: " + " ".join(f"{k}={v}" for k, v in result["structure"].items()))


@click.command("ps:restart")
@click.argument("process_type", required=False)
@app_option
def restart(process_type: str | None, app: str | None) -> None:
    """Restart every process, or those of one type (rolling)."""
    client = Client.from_profile()
    name = resolve_app(app)
    path = f"/v2/apps/{name}/pods/{process_type}/restart" if process_type else f"/v2/apps/{name}/pods/restart"
    client.post(path)
    click.echo(f"Restarted {process_type or 'all'} processes of {name}")


commands = [ps, scale, restart]
