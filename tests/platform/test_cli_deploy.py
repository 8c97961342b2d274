"""``moorage deploy``: what is uploaded (.gitignore/.slugignore) and the streamed output.

What is checked is what the controller receives and records (the files, the source
version, the release ledger), so the controller runs on ``InertRuntime``, which keeps the
``ReleaseSpec`` it is given; deploys that run, scale, ps, restart, run and logs are on the
real runtime behind nginx in ``test_cli_end_to_end.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from moorage.cli.packing import list_files


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


SOURCE = {
    "Procfile": "web: python3 server.py\n",
    "server.py": "print('hi')\n",
    ".gitignore": "*.pyc\n/build/\n.env\nlogs/\n!keep.pyc\n",
    ".slugignore": "tests/\n*.md\n",
    "app.pyc": "x",
    "keep.pyc": "x",
    "build/out.txt": "x",
    "src/build/kept.txt": "x",
    "src/logs/gone.txt": "x",
    ".env": "SECRET=1",
    "tests/test_x.py": "x",
    "README.md": "x",
    "docs/guide.txt": "x",
}
EXPECTED = [
    ".gitignore",
    ".slugignore",
    "Procfile",
    "docs/guide.txt",
    "keep.pyc",
    "server.py",
    "src/build/kept.txt",
]


def test_ignore_rules_without_git(tmp_path):
    write(tmp_path, SOURCE)
    assert list_files(tmp_path) == EXPECTED


def test_ignore_rules_inside_a_git_work_tree(tmp_path):
    write(tmp_path, SOURCE)
    write(tmp_path, {"src/.gitignore": "kept.txt\n"})  # nested rules only git knows
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    os.makedirs(tmp_path / ".git" / "objects", exist_ok=True)
    files = list_files(tmp_path)
    expected = sorted([*(f for f in EXPECTED if f != "src/build/kept.txt"), "src/.gitignore"])
    assert files == expected


def test_deploy_streams_the_build_and_records_a_release(cli, inert_runtime):
    cli.logged_in_as("alice")
    cli.ok("apps:create", "shop")
    write(cli.cwd, SOURCE)
    out = cli.ok("deploy")
    assert "-----> Uploading 8 files" in out  # the 7 above plus .moorage
    assert "Procfile declares types -> web" in out
    assert "moorage[deploy]: v2 is live" in out and "Done, shop v2 deployed" in out
    spec = inert_runtime.deployed["shop"]
    shipped = sorted(str(p.relative_to(spec.slug)) for p in Path(spec.slug).rglob("*") if p.is_file())
    assert shipped == sorted([*EXPECTED, ".moorage"])
    release = json.loads(cli.ok("releases", "--json"))[0]
    assert release["summary"] == f"alice deployed {release['build']['source_version'][:7]}"


def test_deploy_uses_the_git_commit_as_source_version(cli, inert_runtime):
    cli.logged_in_as("alice")
    cli.ok("apps:create", "shop", "--no-remote")
    write(cli.cwd, {"Procfile": "web: python3 server.py\n", "server.py": "x\n"})
    git = ["git", "-C", str(cli.cwd), "-c", "user.email=a@example.com", "-c", "user.name=a"]
    subprocess.run(["git", "init", "-q", str(cli.cwd)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    sha = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([*git, "remote", "add", "moorage", "http://ctl.example/shop.git"], check=True)
    assert "Done, shop v2 deployed" in cli.ok("deploy")
    assert inert_runtime.deployed["shop"].env["SOURCE_VERSION"] == sha
    assert f"alice deployed {sha[:7]}" in cli.ok("releases")


def test_failed_build_exits_non_zero_with_the_reason(cli, inert_runtime):
    cli.logged_in_as("alice")
    cli.ok("apps:create", "shop")
    write(cli.cwd, {"server.py": "x\n"})
    result = cli("deploy")
    assert result.exit_code == 1
    assert "no Procfile at the top of the source" in result.output and "Traceback" not in result.output
    write(cli.cwd, {"Procfile": "web: python3 server.py\n"})
    inert_runtime.fail_deploys = True
    result = cli("deploy")
    assert result.exit_code == 1 and "failed to deploy" in result.output
    assert json.loads(cli.ok("releases", "--json"))[0]["status"] == "failed"
