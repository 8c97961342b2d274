"""Tailing the router's access logs never reads a file the nginx worker user planted.

The access folder belongs to the worker user (``nobody`` here) and Moorage reads it as
root: a symlink, a hard link to a root-owned file or a FIFO in an access log's place
must not stream a secret into an app's ``moorage logs`` (nor block the reader).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.platform.router import Router
from moorage.platform.runtime.logbook import FileTail
from tests.fixtures.router import echo_router, router_settings
from tests.host_requests import request
from tests.polling import wait_for

HOST = "tail.moorage.localhost"
SECRET = b"root-only-secret-0123456789\n"


@pytest.fixture
def router(data_dir: Path) -> Iterator[Router]:
    with echo_router(router_settings(data_dir), "tail", HOST) as r:
        yield r


@pytest.fixture
def secret(data_dir: Path) -> Path:
    path = data_dir / "secret.key"
    path.write_bytes(SECRET * 3)
    path.chmod(0o600)
    return path


def test_nginx_written_log_is_read(router: Router) -> None:
    tail = FileTail(router.access_log("tail"))
    request(router.port, HOST, "/seen")
    lines = wait_for(tail.read_new, what="the access line")
    assert 'path="/seen"' in lines[0] and "app=tail" in lines[0]


def test_symlinked_access_log_is_not_followed(router: Router, secret: Path) -> None:
    log = router.access_log("tail")
    # As the runtime does: the tail is made with the app, before nginx wrote anything.
    tail = FileTail(log)
    log.symlink_to(secret)
    assert tail.read_new() == []
    # A real log the worker user later swaps for a link is refused the same way.
    log.unlink()
    request(router.port, HOST, "/before")
    assert "/before" in wait_for(tail.read_new, what="the access line")[0]
    log.unlink()
    log.symlink_to(secret)
    assert tail.read_new() == []


def test_hard_link_to_a_root_file_and_a_fifo_are_refused(router: Router, secret: Path) -> None:
    log = router.access_log("tail")
    assert os.stat(log.parent).st_uid != secret.stat().st_uid  # the folder is the worker user's
    tail = FileTail(log)
    os.link(secret, log)
    assert tail.read_new() == []
    log.unlink()
    os.mkfifo(log)
    assert tail.read_new() == []  # and it returned: opening a FIFO did not block on a writer
