"""The ``host:port=host:port,…`` test settings that send the broker's admin connections elsewhere.

Why: in tests, a server the broker manages does not answer where it says it does (an RDS
emulator runs no database; a cluster's Service address is not routable from the test
host), so a setting maps that address to where the real server answers. RDS and the
in-cluster offerings read the same format; only the setting's name differs.
"""

from __future__ import annotations

from moorage.errors import ConfigurationError

Address = tuple[str, int]


def parse_address_map(raw: str, setting: str) -> dict[Address, Address]:
    """``"a:5432=127.0.0.1:6543,…"`` → ``{("a", 5432): ("127.0.0.1", 6543)}``.

    ``setting`` is the environment variable's name, for the error about a malformed entry.
    """
    mapping: dict[Address, Address] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            source, target = item.split("=", 1)
            (shost, sport), (thost, tport) = (side.strip().rsplit(":", 1) for side in (source, target))
            mapping[(shost, int(sport))] = (thost, int(tport))
        except ValueError:
            raise ConfigurationError(f"{setting} entry {item!r} is not host:port=host:port") from None
    return mapping
