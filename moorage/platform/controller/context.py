"""What every controller function needs: settings, the state database, the runtime.

Why one object: the API factory builds a :class:`Platform` once and hands it to every
view; tests build one per test with their own data dir. It also owns the per-app locks
that serialize deploys, config changes and rollbacks of one app, so two of them never
race for the same release version or leave the runtime half way between two releases.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from moorage.platform.builder.slugs import private_dir
from moorage.platform.runtime.base import Runtime
from moorage.settings import Settings
from moorage.store.db import Database
from moorage.store.encryptor import Encryptor


class DomainSink(Protocol):
    """Told the full list of custom domains of an app whenever it changes (the router)."""

    def set_domains(self, app: str, domains: list[str]) -> None: ...


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request (a plain value, no database session)."""

    id: int
    username: str
    is_admin: bool


@dataclass
class Platform:
    settings: Settings
    db: Database
    runtime: Runtime
    encryptor: Encryptor
    #: Receives custom domains; ``None`` when the runtime's router is not reachable here.
    domains: DomainSink | None = None
    #: ``build(app, source_dir, env, progress) -> (artifact_dir, process_types)``.
    builder: Any = None
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)

    def app_lock(self, app: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(app, threading.Lock())

    @property
    def slugs_dir(self) -> Path:
        """``<data_dir>/slugs``: uploads, source trees and slugs of every app; Moorage's alone."""
        return private_dir(self.settings.data_dir / "slugs")
