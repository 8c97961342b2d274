"""``moorage apps[:create|:info|:destroy]`` and ``moorage open``."""

from __future__ import annotations

from pathlib import Path

import click

from moorage.cli.client import Client, CliError
from moorage.cli.options import APP_FILE, app_option, json_option, print_json, print_table, resolve_app


@click.command("apps")
@json_option
def list_apps(as_json: bool) -> None:
    """List the apps you own or that are shared with you."""
    client = Client.from_profile()
    apps = client.get("/v2/apps")["results"]
    if as_json:
        print_json(apps)
    elif not apps:
        click.echo("No apps yet; create one with `moorage apps:create NAME`")
    else:
        print_table(["App", "Owner", "URL"], [(a["id"], a["owner"], a["url"]) for a in apps])


@click.command("apps:create")
@click.argument("name", required=False)
@click.option("--no-remote", is_flag=True, help="Do not write a .moorage file in this directory.")
@json_option
def create(name: str | None, no_remote: bool, as_json: bool) -> None:
    """Create an app (a generated two-word name when NAME is left out)."""
    client = Client.from_profile()
    app = client.post("/v2/apps", {"id": name} if name else None)
    marker = Path.cwd() / APP_FILE
    if not no_remote and not marker.exists():
        marker.write_text(app["id"] + "\n")
    if as_json:
        print_json(app)
    else:
        click.echo(f"Created {app['id']}, reachable at {app['url']} after `moorage deploy`")


@click.command("apps:info")
@app_option
@json_option
def info(app: str | None, as_json: bool) -> None:
    """Show an app: owner, URL, formation, domains."""
    client = Client.from_profile()
    name = resolve_app(app)
    data = client.get(f"/v2/apps/{name}")
    if as_json:
        print_json(data)
        return
    structure = " ".join(f"{k}={v}" for k, v in data["structure"].items()) or "(nothing running)"
    print_table(
        ["Field", "Value"],
        [
            ("App", data["id"]),
            ("Owner", data["owner"]),
            ("URL", data["url"]),
            ("Formation", structure),
            ("Domains", ", ".join(data["domains"]) or "-"),
            ("Created", data["created"]),
        ],
    )


@click.command("apps:destroy")
@app_option
@click.option("--confirm", help="The app's name again, to skip the question.")
def destroy(app: str | None, confirm: str | None) -> None:
    """Stop an app and delete it with its releases and files."""
    client = Client.from_profile()
    name = resolve_app(app)
    if confirm is None:
        confirm = click.prompt(f"This destroys {name} for good. Type its name to confirm")
    if confirm != name:
        raise CliError(f"confirmation {confirm!r} does not match {name!r}; nothing destroyed")
    client.delete(f"/v2/apps/{name}")
    marker = Path.cwd() / APP_FILE
    if marker.is_file() and marker.read_text().strip() == name:
        marker.unlink()
    click.echo(f"Destroyed {name}")


@click.command("open")
@app_option
@click.option("--print-url", is_flag=True, help="Only print the URL.")
def open_app(app: str | None, print_url: bool) -> None:
    """Open the app's URL in a browser."""
    client = Client.from_profile()
    url = client.get(f"/v2/apps/{resolve_app(app)}")["url"]
    click.echo(url)
    if not print_url:
        click.launch(url)


commands = [list_apps, create, info, destroy, open_app]
