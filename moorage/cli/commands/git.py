"""``moorage git:remote``: push to deploy, with git fetching the token from the CLI's login.

Why a credential helper instead of a token in the URL: a URL with a password ends up in
``.git/config``, shell history and git's own messages. The remote URL is
``<controller>/<app>.git`` and the checkout's git config gets
``credential.<controller>.helper = !<python> -m moorage.cli.main git:credentials``; that
hidden command answers git's ``get`` with the user name and token of the stored login
(``~/.moorage/cli.json`` or ``MOORAGE_TOKEN``), and only for the controller it is logged in
to, so a token never leaks to another host.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from moorage.cli.client import Client, CliError, load_profile
from moorage.cli.options import app_option, resolve_app

HELPER_COMMAND = "git:credentials"


def _git(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise CliError("git is not installed; install it to push with git") from None
    if check and proc.returncode != 0:
        raise CliError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what git's credential protocol names."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def helper_value() -> str:
    return f"!{shlex.quote(sys.executable)} -m moorage.cli.main {HELPER_COMMAND}"


@click.command("git:remote")
@app_option
@click.option("-r", "--remote", default="moorage", show_default=True, help="The name of the git remote.")
def git_remote(app: str | None, remote: str) -> None:
    """Add a git remote for the app, so that `git push moorage main` deploys it."""
    cwd = Path.cwd()
    if _git(["rev-parse", "--git-dir"], cwd, check=False).returncode != 0:
        raise CliError("this folder is not in a git repository; run `git init` and commit your app first")
    client = Client.from_profile()
    try:
        name = resolve_app(app, cwd)
        client.get(f"/v2/apps/{name}")  # a clear error now rather than at the first push
    finally:
        client.close()
    url = f"{client.url}/{name}.git"
    if _git(["remote", "get-url", remote], cwd, check=False).returncode == 0:
        _git(["remote", "set-url", remote, url], cwd)
    else:
        _git(["remote", "add", remote, url], cwd)
    key = f"credential.{_origin(client.url)}.helper"
    _git(["config", "--local", "--unset-all", key], cwd, check=False)
    _git(["config", "--local", "--add", key, ""], cwd)  # clears helpers from other config files
    _git(["config", "--local", "--add", key, helper_value()], cwd)
    click.echo(f"Git remote {remote} added: {url}")
    click.echo(f"Deploy with: git push {remote} main")


@click.command(HELPER_COMMAND, hidden=True)
@click.argument("action")
def git_credentials(action: str) -> None:
    """git's credential helper protocol (``get``; ``store`` and ``erase`` are ignored)."""
    fields: dict[str, str] = {}
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            break
        key, _, value = line.partition("=")
        fields[key] = value
    if action != "get":
        return
    try:
        client = Client.from_profile()
    except CliError:
        return  # not logged in: git asks elsewhere, then fails with 401
    client.close()
    asked = f"{fields.get('protocol', '')}://{fields.get('host', '')}".lower()
    if asked != _origin(client.url) or not client.token:
        return
    username = load_profile().get("username") or "moorage"
    click.echo(f"username={username}\npassword={client.token}\n")


commands = [git_remote, git_credentials]
