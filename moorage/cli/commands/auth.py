"""``moorage register|login|logout|whoami``: accounts on a controller."""

from __future__ import annotations

import click

from moorage.cli.client import Client, load_profile, save_profile
from moorage.cli.options import json_option, print_json


def _login(url: str, username: str, password: str) -> str:
    client = Client(url)
    try:
        token = client.post("/v2/auth/login", {"username": username, "password": password})["token"]
    finally:
        client.close()
    save_profile({"url": url.rstrip("/"), "username": username, "token": token})
    return token


@click.command("register")
@click.argument("url", required=False)
@click.option("--username", prompt=True, help="Your user name (lower-case letters, digits, _.@+-).")
@click.option(
    "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters."
)
@click.option("--email", default="", help="Your e-mail address.")
def register(url: str | None, username: str, password: str, email: str) -> None:
    """Create an account on a controller (the first one is the admin) and log in."""
    client = Client.from_profile(url, require_token=False)
    try:
        user = client.post("/v2/auth/register", {"username": username, "password": password, "email": email})
    finally:
        client.close()
    _login(client.url, username, password)
    role = " (admin)" if user.get("is_admin") else ""
    click.echo(f"Registered {user['username']}{role} and logged in to {client.url}")


@click.command("login")
@click.argument("url", required=False)
@click.option("--username", prompt=True, help="Your user name.")
@click.option("--password", prompt=True, hide_input=True, help="Your password.")
def login(url: str | None, username: str, password: str) -> None:
    """Log in to a controller; the token is kept in ~/.moorage/cli.json."""
    client = Client.from_profile(url, require_token=False)
    client.close()
    _login(client.url, username, password)
    click.echo(f"Logged in to {client.url} as {username}")


@click.command("logout")
def logout() -> None:
    """Revoke this token on the controller and forget it locally."""
    profile = load_profile()
    if profile.get("token"):
        client = Client(profile.get("url", ""), profile["token"])
        try:
            client.post("/v2/auth/logout")
        except click.ClickException:
            pass  # an already revoked token is fine: forget it anyway
        finally:
            client.close()
    profile.pop("token", None)
    save_profile(profile)
    click.echo("Logged out")


@click.command("whoami")
@json_option
def whoami(as_json: bool) -> None:
    """Show the user you are logged in as."""
    client = Client.from_profile()
    try:
        me = client.get("/v2/auth/whoami")
    finally:
        client.close()
    if as_json:
        print_json(me)
    else:
        click.echo(f"You are {me['username']}{' (admin)' if me['is_admin'] else ''} at {client.url}")


@click.command("auth:regenerate")
@click.option("-u", "--username", help="Another user's token (admins only).")
def regenerate(username: str | None) -> None:
    """Revoke every token and issue a new one (kept in ~/.moorage/cli.json)."""
    client = Client.from_profile()
    try:
        token = client.post("/v2/auth/tokens", {"username": username} if username else None)["token"]
    finally:
        client.close()
    if username is None:
        profile = load_profile()
        profile["token"] = token
        save_profile(profile)
        click.echo("Token regenerated")
    else:
        click.echo(token)


commands = [register, login, logout, whoami, regenerate]
