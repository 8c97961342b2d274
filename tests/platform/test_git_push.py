"""``git push`` deploys with real git, the buildpack builder, the LocalRuntime and nginx.

What a user notices: ``moorage git:remote`` then ``git push moorage main`` shows the build
as ``remote:`` lines and the app answers through the router with the pushed code; the
release names the pushed commit; refused pushes (no access, no or bad credentials,
another branch, a failing build) say why and change nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.platform import Cli, LivePlatform, run_live_platform
from tests.polling import wait_for

HOST = "shop.moorage.localhost"

SERVER = """\
import http.server, json, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({
            "message": open("message.txt").read().strip(),
            "source_version": os.environ.get("SOURCE_VERSION"),
            "release": os.environ.get("MOORAGE_RELEASE"),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def live() -> Iterator[LivePlatform]:
    # The real buildpack builder; a 3 MB size limit, so a big commit is cheap to test.
    with run_live_platform(builder=None, platform={"slug_max_mb": 3}) as platform:
        yield platform


def cli_for(live: LivePlatform, base: Path, user: str) -> Cli:
    home, work = base / f"{user}-home", base / f"{user}-work"
    home.mkdir()
    work.mkdir()
    return Cli(home=home, cwd=work, url=live.controller.url).logged_in_as(user)


def git(cli: Cli, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Real git in the user's checkout, with the user's HOME (where the CLI keeps its login)."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cli.home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",  # a refused login fails instead of prompting
        "GIT_AUTHOR_NAME": "Alice",
        "GIT_AUTHOR_EMAIL": "alice@example.com",
        "GIT_COMMITTER_NAME": "Alice",
        "GIT_COMMITTER_EMAIL": "alice@example.com",
    }
    proc = subprocess.run(["git", *args], cwd=cli.cwd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, (
            f"git {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def commit_app(cli: Cli, message: str, extra: dict[str, bytes] | None = None) -> str:
    files = {
        "Procfile": b"web: python3 server.py\n",
        "server.py": SERVER.encode(),
        "message.txt": message.encode(),
    }
    for name, data in {**files, **(extra or {})}.items():
        (cli.cwd / name).write_bytes(data)
    if not (cli.cwd / ".git").exists():
        git(cli, "init", "--quiet", "--initial-branch=main")
    git(cli, "add", "--all")
    git(cli, "commit", "--quiet", "-m", message)
    return git(cli, "rev-parse", "HEAD").stdout.strip()


def served(live: LivePlatform, until_release: str, timeout: float = 15.0) -> dict:

    def serving() -> dict | None:
        status, body = live.get(HOST)
        answer = json.loads(body) if status == 200 else {}
        return answer if answer.get("release") == until_release else None

    return wait_for(serving, timeout, what=f"{HOST} to serve {until_release}")


def releases(cli: Cli) -> list[dict]:
    return json.loads(cli.ok("releases", "-a", "shop", "--json"))


def test_push_deploys_and_a_second_push_records_the_new_sha(live, tmp_path):
    alice = cli_for(live, tmp_path, "alice")
    alice.ok("apps:create", "shop")
    # 2 MB that does not compress: git sends the pack as a chunked request body.
    first = commit_app(alice, "first", {"blob.bin": os.urandom(2 * 1024 * 1024)})
    assert "Git remote moorage added" in alice.ok("git:remote", "-a", "shop")
    assert git(alice, "remote", "get-url", "moorage").stdout.strip() == f"{live.controller.url}/shop.git"
    assert "token" not in (alice.cwd / ".git" / "config").read_text().lower()

    push = git(alice, "push", "moorage", "main")
    assert "remote: -----> Procfile app detected" in push.stderr, push.stderr
    assert "remote: -----> Released v2" in push.stderr
    assert f"remote: -----> Received main at {first[:7]}" in push.stderr
    app = served(live, "v2")
    assert app == {"message": "first", "source_version": first, "release": "v2"}
    assert releases(alice)[0]["summary"] == f"alice deployed {first[:7]}"

    second = commit_app(alice, "second")
    push = git(alice, "push", "moorage", "main")
    assert "remote: -----> Released v3" in push.stderr, push.stderr
    assert served(live, "v3") == {"message": "second", "source_version": second, "release": "v3"}
    latest = releases(alice)[0]
    assert latest["summary"] == f"alice deployed {second[:7]}"
    assert latest["build"]["source_version"] == second
    # the app's checkout knows its app from the remote: no -a needed
    assert "alice deployed" in alice.ok("releases")


def test_refused_pushes_say_why_and_change_nothing(live, tmp_path):
    alice = cli_for(live, tmp_path, "alice")
    alice.ok("apps:create", "shop")
    good = commit_app(alice, "good")
    alice.ok("git:remote", "-a", "shop")
    git(alice, "push", "moorage", "main")
    served(live, "v2")
    url = f"{live.controller.url}/shop.git"

    # another branch: rejected, naming main/master
    git(alice, "checkout", "--quiet", "-b", "feature")
    commit_app(alice, "feature work")
    push = git(alice, "push", "moorage", "feature", check=False)
    assert push.returncode != 0
    assert "only the main or master branch deploys, not 'feature'" in push.stderr, push.stderr
    assert "pre-receive hook declined" in push.stderr
    assert "feature" not in git(alice, "ls-remote", "moorage").stdout

    # a failing build: rejected with the builder's reason, no release, main unchanged
    git(alice, "checkout", "--quiet", "main")
    git(alice, "rm", "--quiet", "Procfile")
    git(alice, "commit", "--quiet", "-m", "oops")
    push = git(alice, "push", "moorage", "main", check=False)
    assert push.returncode != 0
    assert "remote: !     no buildpack detected this app" in push.stderr, push.stderr
    assert git(alice, "ls-remote", "moorage", "refs/heads/main").stdout.split()[0] == good
    assert [r["version"] for r in releases(alice)][0] == 2
    assert served(live, "v2")["message"] == "good"

    # files that unpack to more than the size limit: refused before anything is written
    git(alice, "reset", "--quiet", "--hard", good)
    (alice.cwd / "zeros.bin").write_bytes(bytes(4 * 1024 * 1024))  # compresses to a few KB
    git(alice, "add", "zeros.bin")
    git(alice, "commit", "--quiet", "-m", "big")
    push = git(alice, "push", "moorage", "main", check=False)
    assert push.returncode != 0
    assert "holds more than 3 MB of files" in push.stderr, push.stderr
    assert [r["version"] for r in releases(alice)][0] == 2
    git(alice, "reset", "--quiet", "--hard", good)

    # bob has no access: his valid token gets "not found", exactly like a missing app
    bob = cli_for(live, tmp_path, "bob")
    bob.ok("apps:create", "bobs-app")
    commit_app(bob, "bob was here")
    bob.ok("git:remote", "-a", "bobs-app")
    git(bob, "remote", "set-url", "moorage", url)
    push = git(bob, "push", "moorage", "main", check=False)
    assert push.returncode != 0
    assert "not found" in push.stderr, push.stderr

    # no credentials at all, or a wrong token: git is asked to authenticate and gives up
    no_helper = ["-c", "credential.helper="]  # overrides the checkout's helper
    for config in (no_helper, [*no_helper, "-c", "credential.helper=!f() { echo password=nope; }; f"]):
        push = git(bob, *config, "push", url, "main", check=False)
        assert push.returncode != 0
        assert "Authentication failed" in push.stderr or "could not read" in push.stderr, push.stderr

    assert [r["version"] for r in releases(alice)][0] == 2
    assert served(live, "v2")["message"] == "good"


def test_git_remote_needs_an_app_you_can_use(live, tmp_path):
    alice = cli_for(live, tmp_path, "alice")
    result = alice("git:remote", "-a", "shop")
    assert result.exit_code != 0 and "git repository" in result.output
    commit_app(alice, "x")
    result = alice("git:remote", "-a", "nope")
    assert result.exit_code != 0 and "no app named 'nope'" in result.output
    assert git(alice, "remote").stdout.strip() == ""


def test_build_output_reaches_git_while_the_build_runs(live, tmp_path):
    """The build waits until the test has *seen* its first line in git's output."""
    shared = Path(tempfile.mkdtemp(prefix="moorage-git-stream-"))
    shared.chmod(0o777)  # the build user creates nothing here but must see the signal
    try:
        pack = shared / "buildpack"
        (pack / "bin").mkdir(parents=True)
        scripts = {
            "detect": "#!/bin/sh\necho Waiting\n",
            "compile": (
                "#!/bin/sh\necho '-----> waiting for the signal'\n"
                f"for i in $(seq 300); do [ -e {shared}/go ] && echo '-----> got it' && exit 0; sleep 0.1; done\n"
                "echo 'no signal: the output was not streamed'; exit 1\n"
            ),
            "release": "#!/bin/sh\necho '---'\n",
        }
        for name, text in scripts.items():
            (pack / "bin" / name).write_text(text)
            (pack / "bin" / name).chmod(0o755)
        for folder in (pack, pack / "bin"):
            folder.chmod(0o755)
        alice = cli_for(live, tmp_path, "alice")
        alice.ok("apps:create", "shop")
        alice.ok("config:set", "-a", "shop", f"BUILDPACK_URL={pack}")
        commit_app(alice, "streamed")
        alice.ok("git:remote", "-a", "shop")
        env = {"PATH": os.environ["PATH"], "HOME": str(alice.home), "GIT_TERMINAL_PROMPT": "0"}
        proc = subprocess.Popen(
            ["git", "push", "moorage", "main"], cwd=alice.cwd, env=env, stderr=subprocess.PIPE, text=True
        )
        seen = []
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if "remote: -----> waiting for the signal" in line:
                (shared / "go").touch()
        assert proc.wait(timeout=120) == 0, "".join(seen)
        text = "".join(seen)
        assert "remote: -----> got it" in text and "remote: -----> Released v3" in text, text
        assert served(live, "v3")["message"] == "streamed"
    finally:
        shutil.rmtree(shared, ignore_errors=True)
