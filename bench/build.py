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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moorage.platform.builder import Builder  # noqa: E402
from moorage.platform.builder.python_versions import stack_pythons  # noqa: E402
from moorage.settings import Settings  # noqa: E402

APPS = ROOT / "tests" / "apps"
SIZE_APPS = ("bp_flask", "bp_django", "bp_express", "bp_static", "bp_release")


def quiet(_line: str) -> None:
    pass


def builder(data_dir: Path) -> Builder:
    return Builder(Settings(data_dir=data_dir), environ=os.environ)


def cold_and_warm(app: str = "bp_flask") -> tuple[float, float, int]:
    data = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        b = builder(data)
        started = time.monotonic()
        b.build("bench", APPS / app, {}, quiet)
        cold = time.monotonic() - started
        started = time.monotonic()
        result = b.build("bench", APPS / app, {}, quiet)
        warm = time.monotonic() - started
        return cold, warm, result.slug_size
    finally:
        shutil.rmtree(data, ignore_errors=True)


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


def by_hand(python: str, app: str = "bp_flask") -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-hand-"))
    try:
        started = time.monotonic()
        shutil.copytree(APPS / app, work / "app")
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
        subprocess.run(["tar", "czf", str(work / "slug.tgz"), "-C", str(work / "app"), "."], check=True)
        return time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)


def slug_sizes() -> dict[str, int]:
    data = Path(tempfile.mkdtemp(prefix="bench-sizes-"))
    try:
        b = builder(data)
        return {app: b.build(app.replace("_", "-"), APPS / app, {}, quiet).slug_size for app in SIZE_APPS}
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-sizes", action="store_true")
    args = parser.parse_args()
    python = newest_python()
    colds, warms, hands = [], [], []
    for _ in range(args.rounds):
        cold, warm, _size = cold_and_warm()
        colds.append(cold)
        warms.append(warm)
        hands.append(by_hand(python))
    cold, warm, hand = statistics.median(colds), statistics.median(warms), statistics.median(hands)
    figures = {
        "interpreter": python,
        "rounds": args.rounds,
        "cold_build_s": round(cold, 2),
        "by_hand_s": round(hand, 2),
        "warm_build_s": round(warm, 2),
        "cold_vs_by_hand": round(cold / hand, 2),
        "warm_vs_cold": round(warm / cold, 2),
    }
    print(f"cold build (bp_flask)     {cold:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in colds)}")
    print(f"by hand (venv, pip, tar)  {hand:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in hands)}")
    print(f"warm rebuild              {warm:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in warms)}")
    print(f"cold / by hand            {cold / hand:6.2f}     (target <= 1.2)")
    print(f"warm / cold               {warm / cold:6.2f}     (target <= 0.3)")
    if not args.no_sizes:
        sizes = slug_sizes()
        figures["slug_bytes"] = sizes
        for app, size in sizes.items():
            print(f"slug {app:<12}         {size / 1024 / 1024:6.2f} MB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
