"""``moorage run COMMAND…``: a one-off command in the app's environment; exits with its code.

Why the arguments are read by hand: as with ``heroku run``, Moorage's own flags may come
before or after the command (``moorage run -a shop rake db:migrate`` and
``moorage run 'python manage.py migrate' -a shop`` mean the same), so click cannot stop at
the first word. Before a ``--``, ``-a/--app NAME`` and ``--json`` are Moorage's; everything
after ``--`` is the command's, even ``-a``. One argument is the command line as it is
(``moorage run 'echo $HOME; exit 3'``); several are joined with spaces, each one that holds
spaces or quotes quoted so it arrives as one word.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import click

from moorage.cli.client import Client
from moorage.cli.options import print_json, resolve_app

USAGE = "moorage run [-a APP] [--json] COMMAND… (or COMMAND… -a APP; after -- all is the command's)"


@dataclass(frozen=True)
class RunArgs:
    app: str | None
    as_json: bool
    command: str


def parse_run_args(args: tuple[str, ...] | list[str]) -> RunArgs:
    """Moorage's flags wherever they are, up to ``--``; the rest is the command."""
    app: str | None = None
    as_json = False
    words: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            words.extend(rest)
            break
        if arg in ("-a", "--app") or arg.startswith("--app="):
            if app is not None:
                raise click.UsageError("-a/--app is given twice; to pass -a to the command, put it after --")
            if "=" in arg:
                app = arg.partition("=")[2]
            elif rest:
                app = rest.pop(0)
            else:
                raise click.UsageError(f"{arg} needs an app name")
            if not app:
                raise click.UsageError(f"{arg} needs an app name")
        elif arg == "--json":
            as_json = True
        else:
            words.append(arg)
    if not words:
        raise click.UsageError(f"no command to run. Usage: {USAGE}")
    return RunArgs(app, as_json, command_line(words))


def command_line(words: list[str]) -> str:
    """As ``heroku run`` builds it: one word is the command line; words with spaces are quoted."""
    if len(words) == 1:
        return words[0]
    return " ".join(shlex.quote(w) if any(c.isspace() or c in "'\"" for c in w) else w for w in words)


class _RawArgsCommand(click.Command):
    """Hands its arguments over exactly as typed: click would drop a leading ``--``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args[:1] in (["--help"], ["-h"]):
            return super().parse_args(ctx, args)
        ctx.meta["run_args"] = list(args)
        return super().parse_args(ctx, [])


@click.command(
    "run",
    cls=_RawArgsCommand,
    options_metavar="[-a APP] [--json] [--] COMMAND…",
    short_help="Run COMMAND once with the current release's files and config.",
)
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run COMMAND once with the current release's files and config.

    -a/--app APP and --json may come before or after COMMAND (as with heroku run);
    everything after -- is the command's, untouched, even -a.
    """
    parsed = parse_run_args(ctx.meta.get("run_args", []))
    client = Client.from_profile()
    result = client.post(f"/v2/apps/{resolve_app(parsed.app)}/run", {"command": parsed.command})
    if parsed.as_json:
        print_json(result)
    else:
        click.echo(result["output"], nl=False)
    raise SystemExit(result["exit_code"])


commands = [run]
