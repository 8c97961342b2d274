"""Node.js build benchmark: cold and warm build of an Express app without a lockfile vs by hand.

Why: most public Node.js samples have no lockfile, and that case builds with ``npm install``
(it used to fail silently). This measures what the builder adds around it, in the same run,
on the same machine, against the same registry:

* cold: ``Builder.build`` of tests/apps/node_express_nolock with an empty build cache
  (so an empty npm cache too);
* by hand: copy the app, ``npm install`` with an empty npm cache, ``tar czf``;
* warm: a second ``Builder.build`` of the unchanged app (node_modules from the cache).

Targets: cold / by hand <= 1.2, warm / cold <= 0.3. Rounds alternate cold and by-hand runs;
medians are reported. Run as root (as Moorage does) or as a normal user:

    .venv/bin/python -m bench.node_build [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from moorage.platform.builder import Builder
from moorage.settings import Settings

APP = Path(__file__).resolve().parent.parent / "tests" / "apps" / "node_express_nolock"


def quiet(_line: str) -> None:
    pass


def cold_and_warm() -> tuple[float, float]:
    data = Path(tempfile.mkdtemp(prefix="bench-node-"))
    try:
        builder = Builder(Settings(data_dir=data), environ=os.environ)
        started = time.monotonic()
        builder.build("bench-node", APP, {}, quiet)
        cold = time.monotonic() - started
        started = time.monotonic()
        builder.build("bench-node", APP, {}, quiet)
        return cold, time.monotonic() - started
    finally:
        shutil.rmtree(data, ignore_errors=True)


def by_hand() -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-node-hand-"))
    try:
        started = time.monotonic()
        shutil.copytree(APP, work / "app")
        env = {
            **os.environ,
            "npm_config_cache": str(work / "npm-cache"),
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "npm_config_audit": "false",
            "npm_config_loglevel": "warn",
        }
        subprocess.run(["npm", "install"], cwd=work / "app", env=env, check=True, capture_output=True)
        subprocess.run(["tar", "czf", str(work / "slug.tgz"), "-C", str(work / "app"), "."], check=True)
        return time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    colds, warms, hands = [], [], []
    for _ in range(args.rounds):
        cold, warm = cold_and_warm()
        colds.append(cold)
        warms.append(warm)
        hands.append(by_hand())
    cold, warm, hand = statistics.median(colds), statistics.median(warms), statistics.median(hands)
    runs = {
        name: ", ".join(f"{x:.2f}" for x in xs) for name, xs in (("c", colds), ("w", warms), ("h", hands))
    }
    print(f"cold build (node_express_nolock)  {cold:6.2f} s   runs: {runs['c']}")
    print(f"by hand (npm install, tar)        {hand:6.2f} s   runs: {runs['h']}")
    print(f"warm rebuild                      {warm:6.2f} s   runs: {runs['w']}")
    print(f"cold / by hand                    {cold / hand:6.2f}     (target <= 1.2)")
    print(f"warm / cold                       {warm / cold:6.2f}     (target <= 0.3)")
    figures = {
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
