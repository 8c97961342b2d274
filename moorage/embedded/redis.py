"""Moorage's own redis-server, started from the system's binary in the data dir.

Why: the ``redis`` provider creates one ACL user per binding on a server, and on one
machine with nothing configured Moorage runs that server itself. The process is started
in its own session, so it outlives a Moorage restart; the next :meth:`EmbeddedRedis.start`
finds it through its pidfile and reuses it, or starts it again on its previous port.

Layout under ``<data_dir>/redis``::

    redis.conf        rewritten on every start (port, paths); 0640 to the service group
    admin-password    0600, the generated password of the ``moorage`` ACL user
    port, redis.log, .lock
    data/             the service user's: append-only file, users.acl (the aclfile: ACL
                      SAVE persists binding users here), redis.pid

The folder and the files directly in it are root's (0711), so the server (run as the
service user) cannot plant links where root writes (:mod:`moorage.embedded.files`).

The ``default`` user is switched off; the admin user is stored as a SHA-256 hash in the
aclfile, so the password exists in clear only in ``admin-password``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from moorage.embedded.ports import LOOPBACK
from moorage.embedded.redis_server import ADMIN_USER, RedisServer
from moorage.embedded.users import DEFAULT_SERVICE_USER, ServiceUser

log = logging.getLogger(__name__)


class EmbeddedRedis(RedisServer):
    """One redis-server in ``<data_dir>/redis``: ``start()``, ``stop()``, ``is_running()``.

    ``durable=False`` turns off RDB snapshots and fsync of the append-only file (tests).
    Its :meth:`stop` is SIGTERM: Redis flushes its append-only file.
    """

    title = "embedded Redis"
    client_options = {"socket_timeout": 2, "socket_connect_timeout": 2}
    instead_of_installing = " or set MOORAGE_SERVICES_REDIS_ADMIN_URL to a server"

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: Path | None = None,
        user_name: str = DEFAULT_SERVICE_USER,
        durable: bool = True,
        start_timeout: float = 30.0,
    ) -> None:
        base = Path(data_dir).absolute() / "redis"
        super().__init__(base, binary=binary, user_name=user_name, start_timeout=start_timeout)
        self.durable = durable

    @property
    def admin_url(self) -> str:
        """``redis://moorage:<password>@127.0.0.1:<port>/0``."""
        return f"redis://{ADMIN_USER}:{self._password()}@{LOOPBACK}:{self.port}/0"

    def start(self) -> str:
        """Prepare the folder if needed, start unless already running, wait for PING; the admin URL."""
        with self._starting() as user:
            self._ensure_password()
            self._start_unless_running(user)
        return self.admin_url

    def _start(self, user: ServiceUser) -> None:
        self._write_acl_file(user)  # the ``default`` user always off: every login is an ACL user's
        port = self._run(user)
        log.info("embedded Redis started", extra={"port": port})

    def _own_config(self) -> list[str]:
        lines = ["appendonly yes", "appendfsync everysec" if self.durable else "appendfsync no"]
        if not self.durable:
            lines.append('save ""')
        return lines
