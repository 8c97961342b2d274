"""Entry point of the ``moorage`` command.

Why discovery: each topic (apps, config, services, the server commands, …) lives in its
own module under ``moorage.cli.commands`` and exports a list ``commands``; this group
imports them, so adding a topic never means editing a shared table.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

import moorage.cli.commands as commands_pkg

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="moorage")
def cli() -> None:
    """Moorage: a self-hosted, Heroku-style platform with an Open Service Broker."""


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        for command in getattr(module, "commands", []):
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="moorage")


if __name__ == "__main__":
    main()
