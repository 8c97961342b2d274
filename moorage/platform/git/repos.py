"""One bare git repository per app, with the pre-receive hook that deploys pushes.

Why the hook is a two-line shell wrapper: it runs the current ``hook.py`` with the
controller's own interpreter in isolated mode, so upgrading Moorage upgrades every
app's hook, and the hook never imports Moorage (no settings, no database). The wrapper
is rewritten when it differs (it names the interpreter's path), so a moved virtualenv
heals on the next push.

Repositories are created on first use (the first ``git push`` or fetch of an app) and
removed with the app. ``receive.fsckObjects`` makes git check every pushed object.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from moorage.errors import ConfigurationError, InvalidParametersError
from moorage.platform.identity import validate_name

HOOK_PROGRAM = Path(__file__).resolve().parent / "hook.py"

CONFIG = {
    "http.receivepack": "true",
    "http.uploadpack": "true",
    "receive.fsckObjects": "true",
    "receive.denyDeletes": "true",
    "core.logAllRefUpdates": "true",
}


def git_root(data_dir: Path) -> Path:
    return data_dir / "git"


def repo_path(data_dir: Path, app: str) -> Path:
    return git_root(data_dir) / f"{validate_name(app)}.git"


def git_env(**extra: str) -> dict[str, str]:
    """A clean environment for git: no system or user config changes what it does."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "HOME": "/nonexistent",
        **extra,
    }


def run_git(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], capture_output=True, text=True, env=env or git_env(), cwd=cwd, timeout=120
        )
    except FileNotFoundError:
        raise ConfigurationError(
            "git is not installed on the controller; install it (apt-get install git)"
        ) from None
    if proc.returncode != 0:
        raise InvalidParametersError(f"git {args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def hook_script() -> str:
    return (
        "#!/bin/sh\n"
        "# Installed by Moorage: hands the push to the controller and prints its build output.\n"
        f"exec {shlex.quote(sys.executable)} -I {shlex.quote(str(HOOK_PROGRAM))}\n"
    )


def ensure(data_dir: Path, app: str) -> Path:
    """The app's bare repository, created (or its hook refreshed) as needed."""
    path = repo_path(data_dir, app)
    root = path.parent
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    if not (path / "HEAD").is_file():
        run_git(["init", "--quiet", "--bare", "--template=", str(path)])
        run_git(["symbolic-ref", "HEAD", "refs/heads/main"], git_env(GIT_DIR=str(path)))
        for key, value in CONFIG.items():
            run_git(["config", key, value], git_env(GIT_DIR=str(path)))
    hooks = path / "hooks"
    hooks.mkdir(exist_ok=True)
    hook = hooks / "pre-receive"
    wanted = hook_script()
    if not hook.is_file() or hook.read_text() != wanted:
        tmp = hooks / ".pre-receive.tmp"
        tmp.write_text(wanted)
        tmp.chmod(0o755)
        os.replace(tmp, hook)
    return path


def remove(data_dir: Path, app: str) -> None:
    shutil.rmtree(repo_path(data_dir, app), ignore_errors=True)
