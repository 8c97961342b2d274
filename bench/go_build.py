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
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common_platform import build_rounds, by_hand, report_builds  # noqa: E402

APP = ROOT / "tests" / "apps" / "go_module"


def go_build(work: Path) -> None:
    """``go build`` of the copied app with an empty build cache and no module downloads."""
    env = {
        **os.environ,
        "GOCACHE": str(work / "go-build"),
        "GOPATH": str(work / "go-path"),
        "GOPROXY": "off",
        "GOFLAGS": "",
    }
    subprocess.run(["go", "build", "-o", "bin/", "./..."], cwd=work / "app", check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    go = subprocess.run(["go", "version"], capture_output=True, text=True, check=True).stdout.split()[2]
    runs = build_rounds(
        args.rounds, APP, "bench-go", "bench-go-build-", lambda: by_hand(APP, "bench-go-hand-", go_build)
    )
    figures = {"go": go, **report_builds(runs, "cold build (go_module)", "by hand (go build, tar)")}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
