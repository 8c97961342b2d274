"""Running helm on charts/moorage from tests: the chart, its values files, the CLI tools.

Why a helper module: the render tests need only helm (no control plane), the install
tests also the control plane; both run the same commands and read the same files.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml

from tests.fixtures.kubernetes import cache_dir

CHART = Path(__file__).resolve().parents[2] / "charts" / "moorage"
MINIMAL = CHART / "ci" / "minimal-values.yaml"
PRODUCTION = CHART / "ci" / "production-values.yaml"


def tools() -> tuple[Path, Path]:
    """(helm, kubectl) from the test cache (scripts/testdeps/kubernetes fills it when empty)."""
    folder = cache_dir() / "helm-kubectl-v37"
    return folder / "helm", folder / "kubectl"


def run(
    argv: Sequence[str | Path], timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env)


def values_args(files: Sequence[Path] = (), sets: Sequence[str] = ()) -> list[str]:
    out: list[str] = []
    for path in files:
        out += ["-f", str(path)]
    for item in sets:
        out += ["--set", item]
    return out


def render(helm: Path, *args: str, release: str = "mo") -> list[dict]:
    """The manifests ``helm template`` makes (hooks included), as dicts."""
    done = run([helm, "template", release, CHART, *args])
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}
