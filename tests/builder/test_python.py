"""Python buildpack: real builds with real pip, run from a slug unpacked elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import httpx
import pytest

from moorage.platform.builder import BuildFailed
from tests.fixtures.builder import BuildLog, running, unpacked

pytestmark = pytest.mark.slow


@pytest.fixture
def build_work_root():
    """An empty folder the build user can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="moorage-test-work-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_flask_app_builds_and_runs_from_an_unpacked_slug(make_builder, app_copy, build_work_root):
    builder = make_builder()
    # A work root of this test's own, so builds running elsewhere cannot confuse the check.
    builder.work_root = build_work_root
    source = app_copy("bp_flask")
    log = BuildLog()

    result = builder.build("flask-app", source, {}, log)

    assert "-----> Python app detected" in log.lines
    assert any("Successfully installed" in line and "flask-3.1.3" in line for line in log.lines)
    # Lines arrive while the build runs, not all at the end.
    detected_at = log.times[log.lines.index("-----> Python app detected")]
    assert log.times[-1] - detected_at > 0.5
    assert result.process_types == {"web": "gunicorn app:app --bind 127.0.0.1:$PORT --workers 1"}
    assert result.buildpacks == ["python"]
    # The build's work folder is gone: the slug is all there is.
    assert list(builder.work_root.iterdir()) == []
    with tarfile.open(result.slug) as slug:
        names = slug.getnames()
        assert "./.venv/bin/gunicorn" in names and "./.profile.d/python.sh" in names
        for member in slug.getmembers():
            assert not (member.issym() and os.path.isabs(member.linkname)), member.name
            if member.isfile() and not member.name.endswith(".pyc"):
                data = slug.extractfile(member).read()
                assert b"moorage-build-" not in data, f"{member.name} names the build folder"

    with unpacked(result.slug) as app_dir, running(app_dir, result.process_types["web"]) as url:
        answer = httpx.get(url + "/")
        assert answer.status_code == 200
        assert answer.text.startswith("hello from flask on 3.")


def test_second_build_reuses_the_cache_and_downloads_nothing(make_builder, app_copy):
    builder = make_builder()
    source = app_copy("bp_flask")
    builder.build("flask-app", source, {}, BuildLog())

    # The index is unreachable now: the build must not need it.
    log = BuildLog()
    offline = {
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "http://127.0.0.1:9/simple",
    }
    result = builder.build("flask-app", source, offline, log)

    assert (
        "-----> Reusing the cached virtualenv (interpreter and requirements unchanged; pip not needed)"
        in log.lines
    )
    assert not [line for line in log.lines if "Downloading" in line or "Collecting" in line]
    with unpacked(result.slug) as app_dir, running(app_dir, result.process_types["web"]) as url:
        assert httpx.get(url + "/").status_code == 200


def test_syntax_error_in_requirements_fails_with_pips_reason(make_builder, app_copy):
    source = app_copy("bp_flask")
    (source / "requirements.txt").write_text("flask=>3.0\n")
    log = BuildLog()
    with pytest.raises(BuildFailed) as failure:
        make_builder().build("bad-reqs", source, {}, log)
    assert "python buildpack failed to compile" in str(failure.value)
    failure = next(line for line in log.lines if line.startswith(" !     "))
    assert failure.startswith(" !     `pip install -r requirements.txt` failed: pip could not install"), (
        failure
    )
    assert any("Invalid requirement" in line for line in log.lines), log.text


def test_unsatisfiable_python_pin_lists_what_is_available(make_builder, app_copy):
    source = app_copy("bp_flask")
    (source / "runtime.txt").write_text("python-3.4.1\n")
    log = BuildLog()
    with pytest.raises(BuildFailed):
        make_builder().build("bad-pin", source, {}, log)
    message = next(line for line in log.lines if "runtime.txt asks for Python ==3.4.1" in line)
    assert "Available: 3." in message


def test_python_version_pin_is_honoured(make_builder, app_copy):
    source = app_copy("bp_flask")
    (source / ".python-version").write_text("3.11\n")
    log = BuildLog()
    result = make_builder().build("pinned", source, {}, log)
    assert any(
        line.startswith("-----> Using Python 3.11.") and "pinned by .python-version" in line
        for line in log.lines
    )
    with unpacked(result.slug) as app_dir, running(app_dir, result.process_types["web"]) as url:
        assert httpx.get(url + "/").text == "hello from flask on 3.11\n"


def test_pipfile_lock_app_is_installed_from_its_pins(make_builder, app_copy):
    """A Pipfile.lock instead of requirements.txt: its pins are installed with pip, and only they."""
    source = app_copy("bp_flask")
    pins = {
        line.split("==")[0].strip().lower(): line.split("==")[1].strip()
        for line in (source / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    (source / "requirements.txt").unlink()
    lock = {
        "_meta": {"pipfile-spec": 6, "requires": {}, "sources": []},
        "default": {name: {"version": f"=={version}"} for name, version in pins.items()},
        "develop": {"pytest": {"version": "==8.0.0"}},
    }
    (source / "Pipfile.lock").write_text(json.dumps(lock))
    log = BuildLog()
    result = make_builder().build("locked", source, {}, log)
    assert any("Pipfile.lock" in line for line in log.lines), log.text
    with unpacked(result.slug) as app_dir:
        site = next((app_dir / ".venv" / "lib").glob("python3.*/site-packages"))
        installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
        assert "flask" in installed and "gunicorn" in installed
        assert "pytest" not in installed, "develop packages are not installed"
        with running(app_dir, result.process_types["web"]) as url:
            assert httpx.get(url + "/").status_code == 200
