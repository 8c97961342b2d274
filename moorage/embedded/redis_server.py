"""What the shared embedded Redis and each dedicated instance's redis-server have in common.

Why: both are one ``redis-server`` in a folder of root's, started as the service user
from the same binary, and Moorage logs into both as the ``moorage`` ACL user. So both
have the same files and the same rules for them. ``redis.conf`` is root's (0640 to the
service group). ``data/`` is the service user's and holds the pidfile and the aclfile,
which the server rewrites itself on ``ACL SAVE``. The admin user is stored in the aclfile
as a SHA-256 hash, so the password is in clear only in ``admin-password``. What differs
(what else ``redis.conf`` says, whether the ``default`` user is always off) is said by
the subclass.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, ClassVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from moorage.embedded.files import read_first, write_for_server, write_owned_by
from moorage.embedded.ports import LOOPBACK
from moorage.embedded.server import EmbeddedServer
from moorage.embedded.users import ServiceUser
from moorage.errors import ConfigurationError

ADMIN_USER = "moorage"
#: The ``default`` user switched off: no login with a password only.
DEFAULT_USER_OFF = "user default off resetpass resetkeys resetchannels -@all"


class RedisServer(EmbeddedServer):
    """A redis-server in ``base``: its files, its ``redis.conf`` and aclfile, its admin client."""

    product = "Redis"
    process_name = "redis-server"
    #: Keep the ``default`` user's line as the server saved it (else it is always off).
    keeps_default_user: ClassVar[bool] = False
    #: Options of the admin client (``redis.Redis``), besides the address and login.
    client_options: ClassVar[dict[str, Any]] = {}
    #: What the missing-binary error offers besides installing redis-server.
    instead_of_installing: ClassVar[str] = ""

    def __init__(self, base: Path, *, binary: Path | None, user_name: str, start_timeout: float) -> None:
        super().__init__(base, user_name=user_name, start_timeout=start_timeout)
        self.config_file = self.base / "redis.conf"
        self.data = self.server_dir = self.base / "data"
        self.acl_file = self.data / "users.acl"
        self.pid_file = self.data / "redis.pid"
        self.log_file = self.base / "redis.log"
        self._binary = binary

    @property
    def binary(self) -> Path:
        if self._binary is None:
            found = shutil.which("redis-server")
            if not found:
                raise ConfigurationError(
                    "redis-server was not found; install it (Debian: apt-get install redis-server)"
                    + self.instead_of_installing
                )
            self._binary = Path(found)
        return self._binary

    # -- what a subclass provides ------------------------------------------------------

    def _bind_addresses(self) -> list[str]:
        """The addresses to listen on (all on the one port)."""
        return [LOOPBACK]

    def _own_config(self) -> list[str]:
        """The lines of ``redis.conf`` after those every Moorage redis-server has."""
        return []

    # -- steps -------------------------------------------------------------------------

    def _launch(self, port: int, user: ServiceUser) -> str | None:
        self._write_config(port, user)
        return self._spawn([self.binary, self.config_file], port, user=user, cwd=self.data)

    def _write_config(self, port: int, user: ServiceUser) -> None:
        lines = [
            f"bind {' '.join(self._bind_addresses())}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            f'pidfile "{self.pid_file}"',
            'logfile ""',
            f'dir "{self.data}"',
            f'aclfile "{self.acl_file}"',
            *self._own_config(),
        ]
        write_for_server(self.config_file, ("\n".join(lines) + "\n").encode(), user)

    def _write_acl_file(self, user: ServiceUser) -> None:
        """(Re)write the admin user's line; keep the users ACL SAVE wrote (``default`` if so kept)."""
        digest = hashlib.sha256(self._password().encode()).hexdigest()
        default = DEFAULT_USER_OFF
        kept: list[str] = []
        for line in read_first(self.acl_file, self.base / "users.acl").splitlines():
            words = line.split()
            user_line = len(words) >= 2 and words[0] == "user"
            if user_line and words[1] == ADMIN_USER:
                continue
            if user_line and words[1] == "default":
                if self.keeps_default_user:
                    default = line
            elif line.strip():
                kept.append(line)
        lines = [default, f"user {ADMIN_USER} on #{digest} ~* &* +@all", *kept]
        write_owned_by(self.acl_file, ("\n".join(lines) + "\n").encode(), user)
        (self.base / "users.acl").unlink(missing_ok=True)  # where versions before 2026-12 kept it

    # -- probes ------------------------------------------------------------------------

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(
            host=LOOPBACK,
            port=port,
            username=ADMIN_USER,
            password=self._password(),
            retry=Retry(NoBackoff(), 0),  # callers poll themselves; redis-py's backoff would slow it
            **self.client_options,
        )

    def _accepts(self, port: int) -> bool:
        client = self._client(port)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
