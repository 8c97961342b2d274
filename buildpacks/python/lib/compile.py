"""bin/compile of the Python buildpack: a relocatable virtualenv with the app's dependencies.

Usage: compile.py BUILD_DIR CACHE_DIR ENV_DIR

Why this shape:

* The virtualenv lives in ``BUILD_DIR/.venv`` (so in the slug) and is made relocatable
  (see ``relocate.py``); ``.profile.d/python.sh`` puts it on ``PATH`` at start.
* CACHE_DIR keeps pip's cache (``pip/``) and the last good virtualenv (``venv/``,
  hard links) with a key: the interpreter, its version and the requirements file's
  content (plus pyproject/setup files when the project itself is installed). When the
  key matches, the cached venv is linked back and pip does not run: a rebuild of an
  unchanged app downloads nothing (like pip, which never upgrades what is already
  satisfied, unpinned requirements stay as they were until the requirements change).
  Otherwise a fresh venv is made (pip's cache still saves unchanged downloads).
* Config vars are read from ENV_DIR only where they matter: ``PIP_INDEX_URL``,
  ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS`` for pip, ``DISABLE_COLLECTSTATIC``, and
  all of them (except the process-shaping ones) for Django's ``collectstatic``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import interpreters  # noqa: E402
import lockfiles  # noqa: E402
import relocate  # noqa: E402

PIP_VARS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_TRUSTED_HOST")
NEVER_EXPORT = {"PATH", "HOME", "PYTHONHOME", "PYTHONPATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "VIRTUAL_ENV"}
CACHE_FORMAT = "1"

PROFILE = """# Written by the Python buildpack: use the app's virtualenv wherever the slug was unpacked.
if [ -d "$PWD/.venv" ]; then _app_root="$PWD"; else _app_root="$HOME"; fi
export VIRTUAL_ENV="$_app_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export PYTHONUNBUFFERED=1
unset _app_root
"""


def topic(text: str) -> None:
    print(f"-----> {text}", flush=True)


def info(text: str) -> None:
    print(f"       {text}", flush=True)


def warn(text: str) -> None:
    print(f" !     Warning: {text}", flush=True)


def fail(text: str) -> None:
    print(f" !     {text}", flush=True)
    sys.exit(1)


def read_env_dir(env_dir: Path) -> dict[str, str]:
    if not env_dir.is_dir():
        return {}
    return {p.name: p.read_text() for p in env_dir.iterdir() if p.is_file()}


def run(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run a command, indenting its output under the current topic."""
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        print("       " + line.rstrip("\n"), flush=True)
    return proc.wait()


def main(build_dir: Path, cache_dir: Path, env_dir: Path) -> None:
    config = read_env_dir(env_dir)
    env = dict(os.environ)
    try:
        interp, why, warning = interpreters.choose(build_dir, env)
    except interpreters.PinError as e:
        fail(str(e))
    topic(f"Using Python {interp.text}: {why}")
    if warning:
        warn(warning)
    try:
        deps = lockfiles.plan(build_dir)
    except lockfiles.LockError as e:
        fail(str(e))

    work = Path(tempfile.mkdtemp(prefix="python-buildpack-"))
    requirements = work / "requirements.txt"
    if deps.requirements_file is not None:
        shutil.copyfile(deps.requirements_file, requirements)
    else:
        requirements.write_text("".join(line + "\n" for line in deps.lines))

    pip_env = dict(env)
    pip_env.update({k: config[k].strip() for k in PIP_VARS if k in config})
    pip_env.update(
        PIP_CACHE_DIR=str(cache_dir / "pip"), PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONUNBUFFERED="1"
    )
    pip_env.pop("PYTHONPATH", None)

    venv = build_dir / ".venv"
    cached = cache_dir / "venv"
    key_file = cache_dir / "venv.key"
    key = cache_key(interp, requirements, deps, build_dir)
    if venv.exists() or venv.is_symlink():
        info("Removing the .venv that came with the source (it is rebuilt here)")
        shutil.rmtree(venv) if venv.is_dir() and not venv.is_symlink() else venv.unlink()
    reused = False
    if cached.is_dir() and key_file.is_file() and key_file.read_text() == key:
        # Same interpreter, same pinned requirements: the cached venv is what pip would
        # produce. Hard links make this instant (relocation replaces files, never edits).
        topic("Reusing the cached virtualenv (interpreter and requirements unchanged; pip not needed)")
        reused = subprocess.run(["cp", "-al", str(cached), str(venv)]).returncode == 0
        if reused and deps.install_project:
            topic("Installing the project itself with pip (its sources may have changed)")
            reused = install_project(venv, pip_env, build_dir) == 0
        if not reused:
            shutil.rmtree(venv, ignore_errors=True)
    if not reused:
        topic(f"Creating a virtualenv with Python {interp.text}")
        if run([interp.path, "-m", "venv", str(venv)], pip_env, build_dir) != 0:
            fail(f"`{interp.path} -m venv` could not create a virtualenv (its reason is above)")
        if interp.version < (3, 7):
            # The pip a 3.6 venv comes with (18.x) cannot resolve today's index; 21.x can.
            topic(f"Upgrading pip for Python {interp.text}: pip install --upgrade 'pip<22'")
            upgrade = [str(venv / "bin" / "python"), "-m", "pip", "install", "--upgrade", "pip<22"]
            if run(upgrade, pip_env, build_dir) != 0:
                fail("`pip install --upgrade 'pip<22'` failed (pip's reason is above)")
        if deps.named_indexes:
            say_index(venv, deps, pip_env, build_dir)
        topic(f"Installing dependencies from {deps.source} with pip")
        if install(venv, requirements, deps, pip_env, build_dir) != 0:
            fail(
                f"`pip install -r requirements.txt` failed: pip could not install the dependencies "
                f"from {deps.source} (pip's reason is above)"
            )
    try:
        count = relocate.relocate(venv, build_dir)
    except relocate.RelocationError as e:
        fail(str(e))
    if not reused:
        info(f"Made the virtualenv relocatable ({count} scripts)")
        shutil.rmtree(cached, ignore_errors=True)
        key_file.unlink(missing_ok=True)
        if subprocess.run(["cp", "-al", str(venv), str(cached)]).returncode == 0:
            key_file.write_text(key)

    profile_d = build_dir / ".profile.d"
    profile_d.mkdir(exist_ok=True)
    (profile_d / "python.sh").write_text(PROFILE)
    collectstatic(build_dir, venv, config, env)
    shutil.rmtree(work, ignore_errors=True)


def say_index(venv: Path, deps: lockfiles.Plan, env: dict[str, str], build_dir: Path) -> None:
    """The lock file's ``[[source]]`` URLs are not used: pip installs from this machine's index."""
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "config", "list"],
        env=env,
        cwd=build_dir,
        capture_output=True,
        text=True,
    ).stdout
    settings = [
        ln.split(".", 1)[-1]
        for ln in listed.splitlines()
        if re.search(r"\.(index-url|extra-index-url|find-links)=", ln)
    ]
    configured = "; ".join(settings) or "pip's default index, https://pypi.org/simple"
    topic(
        f"{deps.source} names the package index {', '.join(deps.named_indexes)}; installing from "
        f"this machine's configured index instead ({configured})"
    )


def cache_key(
    interp: interpreters.Interpreter, requirements: Path, deps: lockfiles.Plan, build_dir: Path
) -> str:
    digest = hashlib.sha256()
    digest.update(f"{CACHE_FORMAT}\n{os.path.realpath(interp.path)}\n{interp.text}\n".encode())
    digest.update(requirements.read_bytes())
    if deps.install_project:
        for name in ("pyproject.toml", "setup.py", "setup.cfg"):
            if (build_dir / name).is_file():
                digest.update((build_dir / name).read_bytes())
    return digest.hexdigest()


def install(
    venv: Path, requirements: Path, deps: lockfiles.Plan, env: dict[str, str], build_dir: Path
) -> int:
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    code = run([*pip, "-r", str(requirements)], env, build_dir)
    if code == 0 and deps.install_project:
        install_project(venv, env, build_dir)
    return code


def install_project(venv: Path, env: dict[str, str], build_dir: Path) -> int:
    """``pip install .`` (never editable); its dependencies are already installed."""
    code = run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "."], env, build_dir)
    shutil.rmtree(build_dir / "build", ignore_errors=True)
    if code != 0:
        fail(
            "`pip install --no-deps .` failed: the project itself could not be installed (pip's reason is above)"
        )
    return code


def collectstatic(build_dir: Path, venv: Path, config: dict[str, str], env: dict[str, str]) -> None:
    if not (build_dir / "manage.py").is_file():
        return
    python = str(venv / "bin" / "python")
    has_django = (
        subprocess.run([python, "-c", "import django"], capture_output=True, cwd=build_dir).returncode == 0
    )
    if not has_django:
        return
    if config.get("DISABLE_COLLECTSTATIC", "").strip() not in ("", "0"):
        topic("Skipping Django collectstatic (DISABLE_COLLECTSTATIC is set)")
        return
    topic("Running: python manage.py collectstatic --noinput")
    run_env = dict(env)
    run_env.update({k: v for k, v in config.items() if k not in NEVER_EXPORT})
    run_env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}")
    if run([python, "manage.py", "collectstatic", "--noinput"], run_env, build_dir) != 0:
        fail(
            "`python manage.py collectstatic --noinput` failed (the reason is above). Fix the static files settings, "
            "or set the config var DISABLE_COLLECTSTATIC=1 to skip this step"
        )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: bin/compile BUILD_DIR CACHE_DIR ENV_DIR")
    main(*(Path(a).resolve() for a in sys.argv[1:]))
