"""``git push`` deploys: which pushed refs deploy, and the pushed commit as a source tree.

Why here and not in the hook: the rules are the controller's. Only ``main`` or
``master`` deploys (like Heroku); any other ref, a deletion, or both branches at once
rejects the whole push with a message that says what to push instead. The pushed commit
is read from git's quarantine (the objects of a push that the pre-receive hook has not
accepted yet) with ``git archive``, unpacked by the same hostile-input-safe code as an
uploaded tarball, and then built and deployed exactly like ``moorage deploy``, with the
commit's SHA as the source version, so the release reads "alice deployed 3f2a9c1" and
the app sees ``SOURCE_VERSION``. A failed build raises, the hook exits non-zero, and git
keeps the branch where it was.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from moorage.errors import InvalidParametersError
from moorage.platform.controller import builds
from moorage.platform.controller.apps import url_of
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.git.channel import PushRequest
from moorage.platform.git.repos import git_env
from moorage.platform.runtime.base import Progress
from moorage.platform.sources import extract_tarball

DEPLOY_BRANCHES = ("refs/heads/main", "refs/heads/master")
SHA_RE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
ZERO_RE = re.compile(r"^0+$")


def deploy_ref(updates: list[tuple[str, str, str]]) -> tuple[str, str]:
    """The ``(ref, sha)`` to deploy, or InvalidParametersError naming main/master."""
    if not updates:
        raise InvalidParametersError("the push updates no branch; push main or master")
    for old, new, ref in updates:
        if not SHA_RE.match(old) or not SHA_RE.match(new):
            raise InvalidParametersError(f"git sent a malformed update for {ref!r}")
        if ref not in DEPLOY_BRANCHES:
            short = ref.removeprefix("refs/heads/")
            raise InvalidParametersError(
                f"only the main or master branch deploys, not {short!r}; "
                f"push it with `git push moorage {short}:main`"
            )
        if ZERO_RE.match(new):
            raise InvalidParametersError(f"deleting {ref.removeprefix('refs/heads/')} is not allowed")
    if len(updates) > 1:
        raise InvalidParametersError("push either main or master, not both at once")
    _, new, ref = updates[0]
    return ref, new


def _objects_env(repo: Path, objects: dict[str, str]) -> dict[str, str]:
    """Git's quarantine variables from the hook, kept only if they point into the repository."""
    root = os.path.realpath(repo)
    env: dict[str, str] = {}
    for name in ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"):
        value = objects.get(name)
        if not value:
            continue
        for part in value.split(os.pathsep):
            real = os.path.realpath(part)
            if real != root and not real.startswith(root + os.sep):
                raise InvalidParametersError(f"{name} points outside the app's repository")
        env[name] = value
    return env


def check_out(platform: Platform, name: str, repo: Path, sha: str, objects: dict[str, str]) -> Path:
    """The tree of commit ``sha`` in a fresh folder under the app's slug folder."""
    env = git_env(GIT_DIR=str(repo), **_objects_env(repo, objects))
    limit = platform.settings.platform.slug_max_mb * 1024 * 1024
    _check_tree_size(sha, env, limit)
    with tempfile.TemporaryFile() as tar:
        proc = subprocess.run(
            ["git", "archive", "--format=tar", f"{sha}^{{commit}}"],
            stdout=tar,
            stderr=subprocess.PIPE,
            env=env,
            timeout=600,
        )
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()
            raise InvalidParametersError(f"cannot read the pushed commit {sha[:7]}: {message}")
        tar.seek(0)
        return extract_tarball(tar, platform.slugs_dir / name, limit)


def _check_tree_size(sha: str, env: dict[str, str], limit: int) -> None:
    """Refuse a commit whose files add up to more than ``limit`` before writing any of them.

    A small pack can expand to gigabytes (compressible blobs); ``git ls-tree -l`` reads the
    sizes from the objects without checking anything out.
    """
    proc = subprocess.run(
        ["git", "ls-tree", "-r", "-l", "-z", f"{sha}^{{commit}}"],
        capture_output=True,
        env=env,
        timeout=600,
    )
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        raise InvalidParametersError(f"cannot read the pushed commit {sha[:7]}: {message}")
    total = 0
    for entry in proc.stdout.split(b"\0"):
        fields = entry.split(None, 4)
        if len(fields) >= 4 and fields[3].isdigit():
            total += int(fields[3])
            if total > limit:
                raise InvalidParametersError(
                    f"commit {sha[:7]} holds more than {limit // (1024 * 1024)} MB of files; "
                    "remove large files from the repository (or raise MOORAGE_PLATFORM_SLUG_MAX_MB)"
                )


def deploy_push(
    platform: Platform, who: Principal, name: str, repo: Path, request: PushRequest, progress: Progress
) -> dict[str, Any]:
    """Check the push, check out its commit, build and deploy it; the new release."""
    ref, sha = deploy_ref(request.updates)
    progress(f"-----> Received {ref.removeprefix('refs/heads/')} at {sha[:7]}")
    source_dir = check_out(platform, name, repo, sha, request.objects)
    release = builds.deploy_source(platform, who, name, source_dir, sha, progress)
    progress(f"-----> Released v{release['version']}")
    progress(f"       {url_of(platform, name)} deployed to Moorage")
    return release
