"""PostgreSQL, Redis and MariaDB servers that Moorage starts itself for its local services.

Why a package of its own: on one machine with nothing configured (the embedded default),
the ``postgres`` and ``redis`` providers need a server to create databases and users on.
Moorage starts one of each from the system's binaries, in its data dir, on loopback
ports, as an unprivileged user, and finds them again after a restart. The test fixtures
(``tests/fixtures/servers.py``) are built on the same classes, so the tests exercise them.
"""

from moorage.embedded.mariadb import EmbeddedMariaDB
from moorage.embedded.ports import free_port
from moorage.embedded.postgres import EmbeddedPostgres
from moorage.embedded.redis import EmbeddedRedis

__all__ = ["EmbeddedMariaDB", "EmbeddedPostgres", "EmbeddedRedis", "free_port"]
