"""``moorage stack`` (what builds can use) and ``moorage stack:install`` (fill the store).

Why on this machine rather than through the API: the interpreter store is a folder of
the machine the builder runs on (``MOORAGE_PLATFORM_STACK_DIR``), filled by root at
install time (``scripts/bootstrap`` runs ``stack:install``); listing it needs no login.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from moorage.cli.commands.server import _settings
from moorage.platform.builder.stack import StackStore, install


def _go_version() -> str:
    go = shutil.which("go")
    if go is None:
        return "not installed (Debian package golang-go; scripts/bootstrap installs it)"
    out = subprocess.run([go, "version"], capture_output=True, text=True).stdout.strip()
    return f"{out.removeprefix('go version ')} ({go})"


@click.command("stack")
def stack() -> None:
    """List the interpreters and toolchains builds can use."""
    settings = _settings()
    store = StackStore(Path(settings.platform.stack_dir))
    pythons = store.pythons()
    click.echo(f"=== Python interpreters in {store.root}")
    if not pythons:
        click.echo("none installed: run `moorage stack:install` as root (builds use the system's python3.X)")
    for p in pythons:
        click.echo(f"{p.version:<10} {p.path:<50} {p.source}")
    click.echo("=== Go")
    click.echo(_go_version())


def _uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() else shutil.which("uv")


@click.command("stack:install")
@click.option(
    "--pyenv-root",
    "pyenv_roots",
    multiple=True,
    type=click.Path(path_type=Path),
    help="pyenv folders to copy interpreters from (default: $PYENV_ROOT and /root/.pyenv).",
)
@click.option(
    "--uv-python",
    "uv_versions",
    multiple=True,
    default=("3.14",),
    show_default=True,
    help="Versions to fetch with `uv python install` when the internet is reachable.",
)
def stack_install(pyenv_roots: tuple[Path, ...], uv_versions: tuple[str, ...]) -> None:
    """Fill the interpreter store from the system's, pyenv's and uv's Pythons (as root)."""
    settings = _settings()
    if os.geteuid() != 0:
        raise click.ClickException(
            "stack:install copies interpreters into a root-owned store: run it as root"
        )
    roots = pyenv_roots or tuple(
        Path(p) for p in {os.environ.get("PYENV_ROOT") or "/root/.pyenv", "/root/.pyenv"}
    )
    store = StackStore(Path(settings.platform.stack_dir))
    click.echo(f"==> filling the interpreter store {store.root}")
    installed = install(
        store,
        roots,
        settings.platform.run_as_user,
        lambda line: click.echo(f"    {line}"),
        uv=_uv(),
        uv_versions=uv_versions,
    )
    click.echo(f"==> builds can use Python {', '.join(p.version for p in installed) or '(none)'}")


commands = [stack, stack_install]
