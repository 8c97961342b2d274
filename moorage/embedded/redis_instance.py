"""A redis-server of its own for one dedicated Redis service instance.

Why: real apps (Bull, Sidekiq, Django's cache, …) expect a whole Redis: the key space,
``AUTH <password>`` as the only login, ``FLUSHDB``. The ``dedicated`` plans give each
instance a ``redis-server`` that Moorage starts from the system's binary, in a folder of
its own under the data dir, on its own loopback port, as the unprivileged service user.

Layout under ``<data_dir>/redis-instances/<name>``::

    settings.json   persistence, maxmemory and eviction policy; its presence means
                    "this instance should run" (the supervisor starts what has one)
    addresses.json  the loopback address of each binding, and the next free one
    redis.conf      rewritten on every start from the two files above (root's, 0640 to
                    the service user's group: the server reads it)
    admin-password  0600, the password of the ``moorage`` ACL user
    port, redis.log, .lock
    data/           the service user's: the append-only file (when the plan persists),
                    users.acl (the aclfile; ACL SAVE keeps the bindings' users here, as
                    hashes) and redis.pid

The folder itself is root's (0711) and so is every file in it: the server, running as
the service user, writes only in ``data/``, and root touches what is in there without
following links (:mod:`moorage.embedded.files`).

Each binding gets its own loopback address (``127.b.c.d``; Linux routes all of
127.0.0.0/8 to ``lo``) on the instance's one port, so that the binding's connections can
be told apart by their local address and closed alone (``CLIENT KILL LADDR``) even when
they logged in as ``default`` with the password only. ``127.0.0.1`` stays bound for
Moorage's own admin connection. Every change to the files happens under a ``flock`` on
``.lock``, so request threads, worker threads and the supervisor of several processes
can act on one instance safely.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from moorage.embedded.files import read_text, root_folder, server_folder, write_private
from moorage.embedded.ports import LOOPBACK
from moorage.embedded.redis_children import adopt
from moorage.embedded.redis_server import RedisServer
from moorage.embedded.users import DEFAULT_SERVICE_USER, ServiceUser, service_user
from moorage.errors import PermanentError

log = logging.getLogger(__name__)

INSTANCES_DIR = "redis-instances"
#: redis-server listens on at most 16 addresses (CONFIG_BINDADDR_MAX; a 17th is a fatal
#: config error at start), and 127.0.0.1 is always one of them.
MAX_BINDINGS = 15


@dataclass(frozen=True)
class ServerSettings:
    """What a plan and its parameters decide about one instance's server."""

    #: Append-only file (fsync every second): data outlives a crash and a restart.
    persistence: bool
    maxmemory_mb: int
    maxmemory_policy: str

    def config_lines(self) -> list[str]:
        return [
            f"appendonly {'yes' if self.persistence else 'no'}",
            "appendfsync everysec",
            'save ""',  # no RDB snapshots: the AOF (with its RDB preamble) is the persistence
            f"maxmemory {self.maxmemory_mb}mb",
            f"maxmemory-policy {self.maxmemory_policy}",
        ]


def instance_dir_name(instance_id: str) -> str:
    """``r-<16 hex>``: stable, and says nothing about the instance id."""
    return "r-" + hashlib.sha256(instance_id.encode()).hexdigest()[:16]


def loopback_address(number: int) -> str:
    """The ``number``-th binding address (from 1): 127.1.0.1, 127.1.0.2, …, never 127.0.x.x."""
    index = number - 1
    return f"127.{1 + index // (254 * 256)}.{(index // 254) % 256}.{index % 254 + 1}"


def _listened(state: dict[str, Any]) -> list[str]:
    """127.0.0.1 (Moorage's admin connection) and the address of every binding."""
    return [LOOPBACK, *sorted(set(state["bindings"].values()))]


class InstanceServer(RedisServer):
    """The redis-server of one instance: create, (re)start, reconfigure, add and drop addresses."""

    title = "Redis server"
    missing_password = "was never created"
    #: Apps may log in as ``default`` with the password only (``AUTH <password>``), so the
    #: ``default`` user is whatever the bindings made it, as ACL SAVE kept it.
    keeps_default_user = True
    client_options = {"decode_responses": True, "socket_timeout": 10, "socket_connect_timeout": 5}

    def __init__(
        self,
        base: Path,
        *,
        binary: Path | None = None,
        user_name: str = DEFAULT_SERVICE_USER,
        start_timeout: float = 10.0,
    ) -> None:
        super().__init__(base, binary=binary, user_name=user_name, start_timeout=start_timeout)
        self.settings_file = self.base / "settings.json"
        self.addresses_file = self.base / "addresses.json"

    # -- what the provider calls -------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.settings_file.exists()

    def create(self, settings: ServerSettings) -> None:
        """Prepare the folder (once) and start the server unless it runs; idempotent."""
        with self._starting() as user:
            self._ensure_password()
            if not self.exists:
                self._write_json(self.settings_file, asdict(settings))
            if not self.is_running():
                self._start(user, fresh_port_allowed=True)

    def ensure_running(self) -> bool:
        """Start the server again if it should run and does not; True when it was started."""
        if not self.exists or self.is_running():
            return False
        try:
            with self._lock():
                if not self.exists or self.is_running():
                    return False  # deleted, or started by someone else meanwhile
                log.warning("the redis-server in %s is not running; starting it again", self.base)
                self._start(service_user(self._user_name), fresh_port_allowed=False)
                return True
        except FileNotFoundError:
            if self.base.exists():
                raise
            return False  # deprovisioned while we looked

    def reconfigure(self, settings: ServerSettings) -> None:
        """Keep new settings for the next start and apply them to the running server."""
        with self._lock():
            self._write_json(self.settings_file, asdict(settings))
            self._rewrite_config()
            with self.admin() as client:
                client.config_set("maxmemory", f"{settings.maxmemory_mb}mb")
                client.config_set("maxmemory-policy", settings.maxmemory_policy)
                client.config_set("appendonly", "yes" if settings.persistence else "no")

    def address_for(self, key: str) -> str:
        """The loopback address of binding ``key`` (allocated once), listened on from now."""
        with self._lock():
            state = self._addresses()
            address = state["bindings"].get(key)
            if address is None:
                if len(state["bindings"]) >= MAX_BINDINGS:
                    raise PermanentError(
                        f"a dedicated Redis instance takes at most {MAX_BINDINGS} bindings (Redis listens "
                        "on at most 16 addresses); unbind one first (a rotation needs a free one too)"
                    )
                address = loopback_address(state["next"])
                state["bindings"][key] = address
                state["next"] += 1
                self._listen(state)  # first: when Redis refuses, nothing is kept for the next start
                self._write_json(self.addresses_file, state)
                self._rewrite_config()
            else:
                self._listen(state)
            return address

    def drop_address(self, key: str) -> str | None:
        """Stop listening on binding ``key``'s address; the address, or None if it had none."""
        with self._lock():
            state = self._addresses()
            address = state["bindings"].pop(key, None)
            if address is not None:
                self._listen(state)
                self._write_json(self.addresses_file, state)
                self._rewrite_config()
            return address

    def destroy(self) -> None:
        """Stop the server and delete the folder with its data; nothing to do if gone."""
        if not self.base.exists():
            return
        with self._lock():
            self.settings_file.unlink(missing_ok=True)  # the supervisor leaves it alone from now
            self.stop()
            shutil.rmtree(self.base, ignore_errors=True)

    def is_running(self) -> bool:
        """True when the pidfile names a live redis-server (cheap: no connection)."""
        return self._live_pid() is not None

    @contextmanager
    def admin(self) -> Iterator[redis.Redis]:
        """A client as the all-commands ``moorage`` user on 127.0.0.1."""
        client = self._client(self.port)
        try:
            yield client
        finally:
            client.close()

    # -- steps -------------------------------------------------------------------------

    def _prepare(self, user: ServiceUser) -> None:
        super()._prepare(user)
        root_folder(self.base.parent)  # the folder of all instances: root's too

    def _start(self, user: ServiceUser, *, fresh_port_allowed: bool = True) -> None:
        """``fresh_port_allowed=False``: a restart keeps the port its bindings were given."""
        root_folder(self.base)  # also a folder made by a version that gave it to the service user
        server_folder(self.data, user)
        self._write_acl_file(user)
        port = self._run(user, may_move=fresh_port_allowed)
        log.info("dedicated Redis started", extra={"port": port, "path": str(self.base)})

    def _keep_child(self, child: subprocess.Popen[bytes]) -> None:
        adopt(child)  # the supervisor reaps it: this object lives no longer than one request

    def _bind_addresses(self) -> list[str]:
        return _listened(self._addresses())

    def _own_config(self) -> list[str]:
        settings = ServerSettings(**json.loads(read_text(self.settings_file)))
        return [
            "databases 16",
            "tcp-backlog 128",
            "enable-debug-command no",
            "enable-module-command no",
            "enable-protected-configs no",
            *settings.config_lines(),
        ]

    def _rewrite_config(self) -> None:
        """For the next start (the running server was told already)."""
        self._write_config(self.port, service_user(self._user_name))

    def _listen(self, state: dict[str, Any]) -> None:
        """Make the running server listen on 127.0.0.1 and every binding's address."""
        with self.admin() as client:
            client.config_set("bind", " ".join(_listened(state)))

    def _addresses(self) -> dict[str, Any]:
        try:
            return json.loads(read_text(self.addresses_file))
        except FileNotFoundError:
            return {"next": 1, "bindings": {}}

    @staticmethod
    def _write_json(path: Path, value: object) -> None:
        write_private(path, json.dumps(value, indent=1, sort_keys=True).encode())

    # -- probes ------------------------------------------------------------------------

    def _is_ours(self, pid: int) -> bool:
        """This instance's live redis-server: not a zombie, not a recycled pid after a reboot.

        Redis runs in its ``dir`` (our ``data/``), which tells it apart from another
        instance's server that got the same pid.
        """
        if not super()._is_ours(pid):
            return False
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "redis-server":
                return False
            return os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(self.data)
        except OSError:  # gone, or another user's (ours run as Moorage's service user)
            return False
