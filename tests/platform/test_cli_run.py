"""``moorage run``: Moorage's flags before or after the command, as with ``heroku run``; ``--``.

Against a real controller (the inert runtime answers ``would run '<command>'`` with the
command line exactly as the controller received it).
"""

from __future__ import annotations

import json

import pytest

from moorage.cli.commands.run import command_line, parse_run_args


@pytest.fixture
def deployed_shop(cli):
    """Apps "shop" (v2) and "other" (v3), and a .moorage file naming "other": -a must win."""
    cli.logged_in_as("alice")
    (cli.cwd / "Procfile").write_text("web: python3 server.py\n")
    for app in ("shop", "other"):
        cli.ok("apps:create", app)
        (cli.cwd / ".moorage").write_text(f"{app}\n")
        cli.ok("deploy")
    cli.ok("config:set", "FOO=1")
    return cli


def ran(cli, *args: str) -> str:
    result = cli("run", *args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("python manage.py migrate", "-a", "shop"), "python manage.py migrate"),
        (("-a", "shop", "python manage.py migrate"), "python manage.py migrate"),
        (("python", "manage.py", "migrate", "-a", "shop"), "python manage.py migrate"),
        (("--app", "shop", "python", "manage.py", "migrate"), "python manage.py migrate"),
        (("python", "--app=shop", "manage.py", "migrate"), "python manage.py migrate"),
        (("-a", "shop", "--", "ls", "-a", "--json"), "ls -a --json"),
        (("--", "ls", "-a", "-a", "shop"), None),  # after --, -a is the command's: no app flag
        (("-a", "shop", "echo", "two words", "it's"), "echo 'two words' 'it'\"'\"'s'"),
    ],
)
def test_flags_before_or_after_the_command(deployed_shop, args, command):
    cli = deployed_shop
    result = cli("run", *args)
    if command is None:
        # The command goes to the app of .moorage ("other", v3), "-a shop" is part of it.
        assert result.exit_code == 0, result.output
        assert result.output == "would run 'ls -a -a shop' in v3\n"
        return
    assert result.exit_code == 0, result.output
    assert result.output == f"would run {command!r} in v2\n"


def test_json_flag_after_the_command(deployed_shop):
    out = json.loads(ran(deployed_shop, "echo", "hi", "--json", "-a", "shop"))
    assert out["exit_code"] == 0 and out["output"] == "would run 'echo hi' in v2\n"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("-a", "shop"), "no command to run"),
        (("echo", "-a"), "-a needs an app name"),
        (
            ("-a", "shop", "ls", "-a", "shop"),
            "-a/--app is given twice; to pass -a to the command, put it after --",
        ),
        (("--app=", "ls"), "--app= needs an app name"),
    ],
)
def test_bad_flags_are_usage_errors_and_run_nothing(deployed_shop, args, error):
    result = deployed_shop("run", *args)
    assert result.exit_code == 2
    assert error in result.output
    assert "would run" not in result.output


def test_one_argument_is_the_command_line_as_it_is():
    assert command_line(["echo $HOME; exit 3"]) == "echo $HOME; exit 3"
    assert command_line(["echo", "$HOME"]) == "echo $HOME"
    assert parse_run_args(["--", "--json"]).command == "--json"
    assert parse_run_args(["--", "--json"]).as_json is False
