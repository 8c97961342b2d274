"""What every platform command shares: ``-a/--app``, ``--json``, and printing.

Why the app can be implied: as with Heroku and Deis, inside an app's checkout the app
is found without typing it, from a ``.moorage`` file (one line: the app name) or a git
remote named ``moorage`` whose URL ends in ``/<app>.git``; ``-a`` always wins.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from moorage.cli.client import CliError

F = TypeVar("F", bound=Callable[..., Any])

APP_FILE = ".moorage"


def app_option(func: F) -> F:
    return click.option(
        "-a", "--app", "app", help="The app (default: from .moorage or the `moorage` git remote)."
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


#: App names as the controller accepts them (DNS labels); checked before a name found
#: in a file or a git remote goes into a URL path.
APP_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


def resolve_app(app: str | None, cwd: Path | None = None) -> str:
    if app:
        return _checked(app, "-a/--app")
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        marker = folder / APP_FILE
        if marker.is_file():
            name = marker.read_text().strip()
            if name:
                return _checked(name, str(marker))
    remote = _git_remote(here)
    if remote:
        return _checked(remote, "the `moorage` git remote")
    raise CliError(
        "which app? pass -a/--app NAME, or run inside a folder with a .moorage file or a `moorage` git remote"
    )


def _checked(name: str, source: str) -> str:
    if not APP_NAME.match(name):
        raise CliError(f"{name!r} (from {source}) is not an app name: lower-case letters, digits and dashes")
    return name


def _git_remote(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "remote", "get-url", "moorage"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    url = out.stdout.strip()
    if out.returncode != 0 or not url:
        return None
    name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return name.removesuffix(".git") or None


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A table fitted to the terminal; into a pipe or a file, one unwrapped line per row.

    Why two ways: rich wraps cells to fit the terminal, which reads well there; elsewhere it
    would assume 80 columns and wrap descriptions into narrow columns that neither a person
    nor ``grep``/``awk`` can use. ``--json`` is the way for scripts that need structure.
    """
    cells = [["" if cell is None else str(cell).replace("\n", " ") for cell in row] for row in rows]
    if sys.stdout.isatty():
        table = Table(*columns, title=title, title_justify="left", box=None, pad_edge=False)
        for row in cells:
            table.add_row(*row)
        console().print(table)
        return
    if title:
        click.echo(title)
    for line in plain_table(columns, cells):
        click.echo(line)


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; nothing wrapped or cut."""
    lines = [list(columns), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]


def parse_assignments(pairs: Sequence[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments; the value may contain ``=`` and be empty."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{pair!r} is not {what}")
        out[key] = value
    return out
