"""Builder benchmark: cold build vs by hand, warm rebuild vs cold, slug sizes per test app.

Why: the builder adds work around what a developer would do by hand (copying the
source, detect/release steps, making the venv relocatable, caching it, packing the
slug). This measures that overhead in the same run, on the same machine, against the
same registry:

* cold: ``Builder.build`` of tests/apps/bp_flask with an empty cache;
* by hand: copy the app, ``python -m venv``, ``pip install -r requirements.txt`` with an
  empty pip cache, ``tar czf`` (same interpreter the builder picks);
* warm: a second ``Builder.build`` of the unchanged app.

Targets: cold / by hand <= 1.2, warm / cold <= 0.3. Rounds alternate cold and by-hand
runs; medians are reported. Run as root (as Moorage does) or as a normal user:

    .venv/bin/python bench/build.py [--rounds 3] [--no-sizes]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common_platform import build_rounds, by_hand, quiet, report_builds  # noqa: E402
from moorage.platform.builder import Builder  # noqa: E402
from moorage.platform.builder.python_versions import stack_pythons  # noqa: E402
from moorage.settings import Settings  # noqa: E402

APPS = ROOT / "tests" / "apps"
APP = APPS / "bp_flask"
SIZE_APPS = ("bp_flask", "bp_django", "bp_express", "bp_static", "bp_release")


def newest_python() -> str:
    """The newest interpreter the builder offers its (unprivileged) build user: the same one."""
    best: tuple[tuple[int, ...], str] | None = None
    for entry in filter(None, stack_pythons(Path(Settings().platform.stack_dir)).split(":")):
        _, _, exe = entry.rpartition("=")
        out = subprocess.run(
            [exe, "-c", "import sys; print(*sys.version_info[:3])"], capture_output=True, text=True
        )
        version = tuple(int(x) for x in out.stdout.split())
        if best is None or version > best[0]:
            best = (version, exe)
    assert best is not None, "no Python interpreter found"
    return best[1]


def venv_install(python: str) -> Callable[[Path], None]:
    """``python -m venv`` in the copied app and ``pip install -r requirements.txt``, empty pip cache."""

    def build(work: Path) -> None:
        env = {**os.environ, "PIP_CACHE_DIR": str(work / "pip-cache")}
        subprocess.run([python, "-m", "venv", str(work / "app" / ".venv")], check=True, env=env)
        subprocess.run(
            [
                str(work / "app" / ".venv" / "bin" / "pip"),
                "install",
                "-q",
                "-r",
                str(work / "app" / "requirements.txt"),
            ],
            check=True,
            env=env,
        )

    return build


def slug_sizes() -> dict[str, int]:
    data = Path(tempfile.mkdtemp(prefix="bench-sizes-"))
    try:
        b = Builder(Settings(data_dir=data), environ=os.environ)
        return {app: b.build(app.replace("_", "-"), APPS / app, {}, quiet).slug_size for app in SIZE_APPS}
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-sizes", action="store_true")
    args = parser.parse_args()
    python = newest_python()
    build = venv_install(python)
    runs = build_rounds(args.rounds, APP, "bench", "bench-build-", lambda: by_hand(APP, "bench-hand-", build))
    figures: dict[str, object] = {
        "interpreter": python,
        **report_builds(runs, "cold build (bp_flask)", "by hand (venv, pip, tar)"),
    }
    if not args.no_sizes:
        sizes = slug_sizes()
        figures["slug_bytes"] = sizes
        for app, size in sizes.items():
            print(f"slug {app:<12}         {size / 1024 / 1024:6.2f} MB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
