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
import subprocess
from pathlib import Path

from bench.common_platform import build_rounds, by_hand, report_builds

APP = Path(__file__).resolve().parent.parent / "tests" / "apps" / "node_express_nolock"


def npm_install(work: Path) -> None:
    """``npm install`` of the copied app with an empty npm cache (no lockfile: resolves the ranges)."""
    env = {
        **os.environ,
        "npm_config_cache": str(work / "npm-cache"),
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        "npm_config_loglevel": "warn",
    }
    subprocess.run(["npm", "install"], cwd=work / "app", env=env, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = build_rounds(
        args.rounds, APP, "bench-node", "bench-node-", lambda: by_hand(APP, "bench-node-hand-", npm_install)
    )
    print(json.dumps(report_builds(runs, "cold build (node_express_nolock)", "by hand (npm install, tar)")))


if __name__ == "__main__":
    main()
