"""images/moorage/Dockerfile's build steps that can run here: its context, its install.

Why: no machine here builds images, but what the image copies and how it installs
Moorage can be checked directly — the files COPY names must get past the Dockerfile's own
.dockerignore, and a non-editable install of exactly those files (pip, as the image runs
it) must find its catalog, migrations and router code where the image's ENV says.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "moorage" / "Dockerfile"
IGNORE = ROOT / "images" / "moorage" / "Dockerfile.dockerignore"


def _copied() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not --from a stage)."""
    out = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, dest = line.split()[1:]
            out.append((sources, dest))
    return out


def _env() -> dict[str, str]:
    """The image's ENV values (``KEY=value`` pairs, continued lines included)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            pairs.update(re.findall(r"(\w+)=(\S+)", line))
    return pairs


def _admitted(path: str) -> bool:
    """Docker's rule for this file's form: ``*`` excludes all, later ``!pattern`` lines re-admit."""
    admitted = True
    for raw in IGNORE.read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            admitted = negate
    return admitted


def test_every_copied_file_is_in_the_build_context() -> None:
    sources = [s for group, _ in _copied() for s in group]
    assert sources == ["requirements.txt", "pyproject.toml", "README.md", "moorage", "catalog"]
    for source in sources:
        assert (ROOT / source).exists(), source
        assert _admitted(source), f"{source} is left out of the context by {IGNORE.name}"
    assert not _admitted("tests") and not _admitted(".venv") and not _admitted(".git")


def test_a_non_editable_install_of_the_context_finds_its_catalog_and_data(tmp_path: Path) -> None:
    context = tmp_path / "src"
    for sources, _dest in _copied():
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, context / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                context.mkdir(exist_ok=True)
                shutil.copyfile(ROOT / source, context / source)
    site = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(context)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert pip.returncode == 0, pip.stderr
    image_env = _env()
    catalog = image_env["MOORAGE_CATALOG_DIR"].replace("/opt/moorage/src", str(context))
    probe = (
        "import moorage, pathlib, sys\n"
        "from moorage.catalog.loader import load_catalog\n"
        "from moorage.settings import Settings\n"
        f"assert moorage.__file__.startswith({str(site)!r}), moorage.__file__\n"
        "root = pathlib.Path(moorage.__file__).parent\n"
        "assert (root / 'platform/router/lua/moorage_router.lua').is_file()\n"
        "assert list((root / 'store/migrations/versions').glob('*.py'))\n"
        "print(len(load_catalog(Settings.from_env().catalog_dirs).offerings))\n"
    )
    # -S: no .pth files, so the checkout's editable install cannot answer for the copy;
    # the dependencies come from this environment's site-packages as plain paths.
    path = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": path, "MOORAGE_CATALOG_DIR": catalog}
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(list((ROOT / "catalog").glob("*.yaml")))
