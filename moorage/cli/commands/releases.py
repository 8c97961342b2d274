"""``moorage releases[:info]`` and ``moorage rollback``: the release ledger."""

from __future__ import annotations

import click

from moorage.cli.client import Client
from moorage.cli.options import app_option, json_option, print_json, print_table, resolve_app


@click.command("releases")
@app_option
@json_option
def list_releases(app: str | None, as_json: bool) -> None:
    """List the app's releases, newest first."""
    client = Client.from_profile()
    rows = client.get(f"/v2/apps/{resolve_app(app)}/releases")["results"]
    if as_json:
        print_json(rows)
        return
    print_table(
        ["Version", "Status", "Created", "Summary"],
        [(f"v{r['version']}", r["status"], r["created"][:19].replace("T", " "), r["summary"]) for r in rows],
    )


@click.command("releases:info")
@click.argument("version")
@app_option
@json_option
def info(version: str, app: str | None, as_json: bool) -> None:
    """Show one release: who, when, build and config."""
    client = Client.from_profile()
    number = version.lstrip("vV")
    data = client.get(f"/v2/apps/{resolve_app(app)}/releases/v{number}")
    if as_json:
        print_json(data)
        return
    build = data["build"]
    print_table(
        ["Field", "Value"],
        [
            ("Version", f"v{data['version']}"),
            ("Status", data["status"] + (f": {data['failure']}" if data.get("failure") else "")),
            ("By", data["created_by"]),
            ("Created", data["created"]),
            ("Summary", data["summary"]),
            ("Build", f"{build['source_version'][:7]} ({build['id'][:8]})" if build else "-"),
            ("Config", ", ".join(sorted(data.get("config", {}))) or "-"),
        ],
    )


@click.command("rollback")
@click.argument("version", required=False)
@app_option
@json_option
def rollback(version: str | None, app: str | None, as_json: bool) -> None:
    """Make a new release with the build and config of VERSION (default: the previous one)."""
    client = Client.from_profile()
    name = resolve_app(app)
    result = client.post(f"/v2/apps/{name}/releases/rollback", {"version": version} if version else None)
    if as_json:
        print_json(result)
    else:
        click.echo(f"{result['release']['summary']} -> {name} v{result['release']['version']}")


commands = [list_releases, info, rollback]
