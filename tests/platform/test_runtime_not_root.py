"""Moorage not running as root: apps run as the current user, whatever uid the controller gave.

The suite runs as root, so this test starts a Python of its own as ``nobody`` (setpriv,
no groups) that runs a one-off command of a release carrying a uid on the real
LocalRuntime: it must run, as ``nobody``, and the files kept for the app must be that
user's alone (no group or other bits).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534

SCRIPT = """
import json, os, stat, sys
sys.path[:0] = sys.argv[3:]
from pathlib import Path
from moorage.platform.runtime.base import ReleaseSpec
from moorage.platform.runtime.local import LocalRuntime
from moorage.settings import Settings

data, slug = Path(sys.argv[1]), sys.argv[2]
runtime = LocalRuntime(Settings(data_dir=data), None)
try:
    result = runtime.run_once(ReleaseSpec("solo", 1, slug, {}, {}, uid=47301), "id -u; cat hello.txt")
finally:
    runtime.close()
paths = ("releases", "releases/solo", "releases/solo/v1", "releases/solo/v1/hello.txt", "tmp/solo")
modes = {p: oct(stat.S_IMODE(os.stat(data / p).st_mode)) for p in paths}
print(json.dumps({"exit": result.exit_code, "output": result.output, "modes": modes}))
"""


def test_not_as_root_an_app_runs_as_the_current_user_with_files_only_it_reads() -> None:
    assert os.geteuid() == 0, "the test drops to nobody itself: it runs as root, like the suite"
    work = Path(tempfile.mkdtemp(prefix="moorage-not-root-"))
    try:
        slug = work / "slug"
        slug.mkdir()
        (slug / "hello.txt").write_text("hi\n")
        for path in (work, slug, slug / "hello.txt"):
            os.chown(path, NOBODY, NOBODY)
        # The system's Python (the venv's may live under /root, which nobody cannot enter).
        python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
        proc = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python, "-c", SCRIPT,
             str(work / "data"), str(slug), str(ROOT), *site.getsitepackages()],
            capture_output=True, text=True, timeout=120, cwd=work, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert got["exit"] == 0 and got["output"] == f"{NOBODY}\nhi\n", got
    assert got["modes"] == {
        "releases": "0o711",
        "releases/solo": "0o700",
        "releases/solo/v1": "0o500",
        "releases/solo/v1/hello.txt": "0o400",
        "tmp/solo": "0o700",
    }
