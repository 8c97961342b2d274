"""``moorage deploy``: upload the current directory and stream the build and deploy."""

from __future__ import annotations

from pathlib import Path

import click

from moorage.cli import packing
from moorage.cli.client import Client, CliError
from moorage.cli.options import app_option, print_json, resolve_app


@click.command("deploy")
@app_option
@click.option(
    "-d",
    "--dir",
    "directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    help="The source directory (default: the current one).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new release as JSON at the end.")
def deploy(app: str | None, directory: Path, as_json: bool) -> None:
    """Build and deploy the source in this directory (respecting .gitignore and .slugignore)."""
    client = Client.from_profile()
    root = directory.resolve()
    name = resolve_app(app, root)
    names = packing.list_files(root)
    if "Procfile" not in names:
        click.echo("note: no Procfile in the upload; the buildpack's default process types apply", err=True)
    archive, size, digest = packing.pack(root, names)
    version = packing.source_version(root) or digest
    click.echo(f"-----> Uploading {len(names)} files ({size / 1024:.0f} KB) to {name}", err=as_json)
    result = None
    with archive:
        for event in client.upload_ndjson(
            f"/v2/apps/{name}/builds", packing.chunks(archive), size, {"source_version": version}
        ):
            if "log" in event:
                click.echo(event["log"], err=as_json)
            elif "error" in event:
                raise CliError(event["error"]["message"])
            elif "result" in event:
                result = event["result"]
    if result is None:
        raise CliError(
            "the controller closed the connection before the deploy finished; see `moorage releases`"
        )
    if as_json:
        print_json(result)
    else:
        click.echo(f"Done, {name} v{result['version']} deployed")


commands = [deploy]
