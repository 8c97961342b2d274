"""The ``moorage`` command against a real controller: accounts, apps, config, releases.

What is checked is what the CLI sends and prints and what the controller records, so the
controller runs on ``InertRuntime``; the same commands against running apps behind nginx
are in ``test_cli_end_to_end.py``.
"""

from __future__ import annotations

import json
import stat
import subprocess


def test_register_login_whoami_logout(cli):
    out = cli.ok("register", cli.url, "--username", "alice", "--password", "correct-horse")
    assert "Registered alice (admin)" in out
    profile = cli.home / ".moorage" / "cli.json"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert json.loads(profile.read_text())["url"] == cli.url
    assert "You are alice (admin)" in cli.ok("whoami")
    assert json.loads(cli.ok("whoami", "--json")) == {"username": "alice", "is_admin": True}
    cli.ok("logout")
    result = cli("whoami")
    assert result.exit_code == 1 and "not logged in" in result.output and "Traceback" not in result.output
    result = cli("login", cli.url, "--username", "alice", "--password", "wrong-pass")
    assert result.exit_code == 1 and "Error: wrong username or password" in result.output
    assert "Logged in" in cli.ok("login", cli.url, "--username", "alice", "--password", "correct-horse")


def test_env_overrides_the_stored_profile(cli, controller):
    token = controller.user("bob").headers["Authorization"].split()[1]
    assert "You are bob" in cli.ok("whoami", env={"MOORAGE_URL": cli.url, "MOORAGE_TOKEN": token})
    result = cli("whoami", env={"MOORAGE_URL": "http://127.0.0.1:9", "MOORAGE_TOKEN": token})
    assert result.exit_code == 1 and "cannot reach the controller at http://127.0.0.1:9" in result.output


def test_apps_config_releases_rollback(cli):
    cli.logged_in_as("alice")
    assert "Created shop" in cli.ok("apps:create", "shop")
    assert (cli.cwd / ".moorage").read_text().strip() == "shop"  # later commands infer the app
    assert "shop" in cli.ok("apps")
    assert "alice added FOO, GREETING -> shop v2" in cli.ok("config:set", "FOO=1", "GREETING=hello=world")
    assert cli.ok("config:get", "GREETING").strip() == "hello=world"
    assert json.loads(cli.ok("config", "--json")) == {"FOO": "1", "GREETING": "hello=world"}
    assert "FOO=1" in cli.ok("config", "--shell")
    result = cli("config:set", "FOO=1")
    assert result.exit_code == 1 and "nothing changed" in result.output
    assert "alice removed FOO -> shop v3" in cli.ok("config:unset", "FOO")
    result = cli("config:set", "9BAD=x")
    assert result.exit_code == 1 and "invalid config key '9BAD'" in result.output
    result = cli("config:set", "NOEQUALS")
    assert result.exit_code == 2 and "is not KEY=VALUE" in result.output
    releases = json.loads(cli.ok("releases", "--json"))
    assert [r["version"] for r in releases] == [3, 2, 1]
    assert "v3" in cli.ok("releases")
    assert "FOO, GREETING" in cli.ok("releases:info", "v2")
    assert "alice rolled back to v2 -> shop v4" in cli.ok("rollback", "v2")
    assert json.loads(cli.ok("config", "--json"))["FOO"] == "1"
    result = cli("rollback", "v1")
    assert result.exit_code == 1 and "empty initial release" in result.output


def test_app_is_taken_from_a_flag_a_dot_moorage_file_or_a_git_remote(cli):
    cli.logged_in_as("alice")
    cli.ok("apps:create", "first", "--no-remote")
    cli.ok("apps:create", "second", "--no-remote")
    result = cli("config")
    assert result.exit_code == 1 and "which app?" in result.output
    cli.ok("config:set", "-a", "first", "WHERE=flag")
    subprocess.run(["git", "init", "-q", str(cli.cwd)], check=True)
    subprocess.run(
        ["git", "-C", str(cli.cwd), "remote", "add", "moorage", "http://ctl.example/second.git"], check=True
    )
    cli.ok("config:set", "WHERE=remote")
    (cli.cwd / ".moorage").write_text("first\n")
    assert cli.ok("config:get", "WHERE").strip() == "flag"
    assert cli.ok("config:get", "-a", "second", "WHERE").strip() == "remote"
    # A name from a file is checked before it goes into a URL.
    (cli.cwd / ".moorage").write_text("x/../../services/db\n")
    result = cli("config")
    assert result.exit_code == 1 and "is not an app name" in result.output


def test_other_users_apps_and_bad_input_give_readable_errors(cli, controller):
    controller.user("root")
    other = controller.user("bob")
    other.post("/v2/apps", json={"id": "bobs"})
    cli.logged_in_as("alice")
    for args in (["apps:info", "-a", "bobs"], ["config", "-a", "bobs"], ["releases", "-a", "bobs"]):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert "Error: no app named 'bobs'" in result.output and "Traceback" not in result.output
    result = cli("apps:create", "Bad_Name")
    assert result.exit_code == 1 and "invalid app name" in result.output
    cli.ok("apps:create", "shop")
    result = cli("scale", "web=x")
    assert result.exit_code == 2 and "whole number" in result.output
    result = cli("scale", "web=2")
    assert result.exit_code == 1 and "not been deployed yet" in result.output


def test_sharing_domains_and_destroy(cli, controller):
    controller.user("root")
    bob = controller.user("bob")
    cli.logged_in_as("alice")
    cli.ok("apps:create", "shop")
    assert "Shared shop with bob" in cli.ok("perms:add", "bob")
    assert cli.ok("perms").split() == ["bob"]
    assert bob.get("/v2/apps/shop").status_code == 200
    cli.ok("perms:remove", "bob")
    assert bob.get("/v2/apps/shop").status_code == 404
    assert "Added www.example.com" in cli.ok("domains:add", "www.example.com")
    out = cli.ok("domains")
    assert "http://shop.moorage.localhost" in out and "www.example.com" in out
    result = cli("domains:add", "not a domain")
    assert result.exit_code == 1 and "invalid domain" in result.output
    cli.ok("domains:remove", "www.example.com")
    assert json.loads(cli.ok("domains", "--json")) == []
    assert cli.ok("open", "--print-url").strip().startswith("http://shop.moorage.localhost")
    result = cli("apps:destroy", "--confirm", "nope")
    assert result.exit_code == 1 and "does not match" in result.output
    assert "Destroyed shop" in cli.ok("apps:destroy", input="shop\n")
    assert not (cli.cwd / ".moorage").exists()
    assert json.loads(cli.ok("apps", "--json")) == []


def test_a_malformed_controller_url_is_a_readable_error(cli):
    result = cli("login", "http://[::1", "--username", "alice", "--password", "correct-horse")
    assert result.exit_code == 1 and "invalid controller URL 'http://[::1'" in result.output
    result = cli("apps", env={"MOORAGE_URL": "http://[::1", "MOORAGE_TOKEN": "x"})
    assert result.exit_code == 1 and "invalid controller URL" in result.output
