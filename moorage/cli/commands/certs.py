"""``moorage certs[:add|:remove]`` and ``tls:force:enable|disable``: HTTPS for custom domains.

As ``heroku certs:add CERT KEY``: the files are read here and sent as PEM text; the
controller checks them and says why it refuses one. The redirect commands are Deis
Workflow's ``tls:force:enable`` / ``tls:force:disable``.
"""

from __future__ import annotations

from pathlib import Path

import click

from moorage.cli.client import Client, CliError
from moorage.cli.options import app_option, json_option, print_json, resolve_app


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(
            f"cannot read the {what} file {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None


@click.command("certs")
@app_option
@json_option
def list_certs(app: str | None, as_json: bool) -> None:
    """List the app's certificates and the custom domains each one serves."""
    client = Client.from_profile()
    name = resolve_app(app)
    found = client.get(f"/v2/apps/{name}/certs")
    if as_json:
        print_json(found)
        return
    if not found["certs"]:
        click.echo(f"{name} has no certificate; its custom domains get the platform's default one")
    for cert in found["certs"]:
        domains = ", ".join(cert["domains"]) or "no domain (another certificate is newer)"
        click.echo(
            f"{cert['id']}  {', '.join(cert['names'])}  expires {cert['expires_at'][:10]}  serves {domains}"
        )
    click.echo(f"HTTP is {'redirected to HTTPS' if found['force_https'] else 'served as is'}")


@click.command("certs:add")
@click.argument("cert_file", metavar="CERT")
@click.argument("key_file", metavar="KEY")
@app_option
def add(cert_file: str, key_file: str, app: str | None) -> None:
    """Serve the certificate chain CERT (PEM, leaf first) with its key KEY for the app's domains."""
    body = {"certificate": _read(cert_file, "certificate"), "key": _read(key_file, "key")}
    client = Client.from_profile()
    name = resolve_app(app)
    cert = client.post(f"/v2/apps/{name}/certs", body)
    click.echo(
        f"Added certificate {cert['id']} ({cert['subject']}) to {name}: serves {', '.join(cert['domains'])}"
    )


@click.command("certs:remove")
@click.argument("domain")
@app_option
def remove(domain: str, app: str | None) -> None:
    """Remove the app's certificate(s) for DOMAIN; the platform's default one serves it again."""
    client = Client.from_profile()
    name = resolve_app(app)
    removed = client.delete(f"/v2/apps/{name}/certs/{domain}")["removed"]
    click.echo(f"Removed certificate {', '.join(map(str, removed))} for {domain} from {name}")


def _force(enabled: bool, app: str | None) -> None:
    client = Client.from_profile()
    name = resolve_app(app)
    client.request("PUT", f"/v2/apps/{name}/tls", {"force_https": enabled})
    click.echo(f"HTTP requests to {name} are {'now redirected to HTTPS' if enabled else 'served again'}")


@click.command("tls:force:enable")
@app_option
def force_enable(app: str | None) -> None:
    """Redirect the app's HTTP requests to HTTPS (301; 308 for methods with a body)."""
    _force(True, app)


@click.command("tls:force:disable")
@app_option
def force_disable(app: str | None) -> None:
    """Serve the app's HTTP requests again instead of redirecting them."""
    _force(False, app)


commands = [list_certs, add, remove, force_enable, force_disable]
