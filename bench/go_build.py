"""Go builder benchmark: cold build vs ``go build`` by hand, warm rebuild vs cold.

Why: the Go buildpack adds work around what a developer does by hand (copying the
source, detecting among the built-ins, ``go list`` for the main packages, the profile
script, packing the slug). This measures that overhead in the same run, on the same
machine, with the same Go (Debian's golang-go):

* cold: ``Builder.build`` of tests/apps/go_module with an empty build cache;
* by hand: copy the app, ``go build -o bin/ ./...`` with an empty ``GOCACHE``,
  ``tar czf`` of the result;
* warm: a second ``Builder.build`` of the unchanged app (Go's build cache kept in the
  app's build cache).

Targets (as for Python): cold / by hand <= 1.2, warm / cold <= 0.3. Rounds alternate;
medians are reported. Run as root (as Moorage does) or as a normal user:

    .venv/bin/python bench/go_build.py [--rounds 5]
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
from moorage.settings import Settings  # noqa: E402

APP = ROOT / "tests" / "apps" / "go_module"


def quiet(_line: str) -> None:
    pass


def cold_and_warm() -> tuple[float, float]:
    data = Path(tempfile.mkdtemp(prefix="bench-go-build-"))
    try:
        builder = Builder(Settings(data_dir=data), environ=os.environ)
        started = time.monotonic()
        builder.build("bench-go", APP, {}, quiet)
        cold = time.monotonic() - started
        started = time.monotonic()
        builder.build("bench-go", APP, {}, quiet)
        return cold, time.monotonic() - started
    finally:
        shutil.rmtree(data, ignore_errors=True)


def by_hand() -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-go-hand-"))
    try:
        started = time.monotonic()
        shutil.copytree(APP, work / "app")
        env = {
            **os.environ,
            "GOCACHE": str(work / "go-build"),
            "GOPATH": str(work / "go-path"),
            "GOPROXY": "off",
            "GOFLAGS": "",
        }
        subprocess.run(["go", "build", "-o", "bin/", "./..."], cwd=work / "app", check=True, env=env)
        subprocess.run(["tar", "czf", str(work / "slug.tgz"), "-C", str(work / "app"), "."], check=True)
        return time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    go = subprocess.run(["go", "version"], capture_output=True, text=True, check=True).stdout.split()[2]
    colds, warms, hands = [], [], []
    for _ in range(args.rounds):
        cold, warm = cold_and_warm()
        colds.append(cold)
        warms.append(warm)
        hands.append(by_hand())
    cold, warm, hand = statistics.median(colds), statistics.median(warms), statistics.median(hands)
    print(f"cold build (go_module)    {cold:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in colds)}")
    print(f"by hand (go build, tar)   {hand:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in hands)}")
    print(f"warm rebuild              {warm:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in warms)}")
    print(f"cold / by hand            {cold / hand:6.2f}     (target <= 1.2)")
    print(f"warm / cold               {warm / cold:6.2f}     (target <= 0.3)")
    figures = {
        "go": go,
        "rounds": args.rounds,
        "cold_build_s": round(cold, 2),
        "by_hand_s": round(hand, 2),
        "warm_build_s": round(warm, 2),
        "cold_vs_by_hand": round(cold / hand, 2),
        "warm_vs_cold": round(warm / cold, 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
