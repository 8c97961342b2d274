"""Serving the controller with gunicorn: one process, many threads.

Why one process: the controller keeps per-app locks in memory. Threads serve concurrent
and streaming requests (build output, ``logs -f``). With the local runtime, app
processes and the nginx router belong to ``moorage supervisor`` (see
``runtime.daemon``), not to this process: ``load()`` connects to it (starting it when
none runs), and nothing is stopped when the worker exits, so apps outlive a crash,
restart or upgrade of the controller.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from moorage.errors import ConfigurationError
from moorage.settings import Settings

log = logging.getLogger(__name__)

#: What ``MOORAGE_PLATFORM_RUNTIME`` may name.
RUNTIMES = ("local", "kubernetes")


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data dir so unprivileged app users can traverse (not list) it.

    Release directories live below it and are run by the app user; everything private
    in it (state, keys, passwords) is created 0600 or inside 0700 folders.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o711)


class ControllerServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, build_environ: Mapping[str, str]) -> None:
        self.settings = settings
        #: Proxy, CA-bundle and package-index variables builds may need (from the entry point).
        self.build_environ = build_environ
        self._runtime: Any = None
        super().__init__()

    def load_config(self) -> None:
        p = self.settings.platform
        options: dict[str, Any] = {
            "bind": f"{p.host}:{p.port}",
            "workers": 1,
            "threads": 32,
            "worker_class": "gthread",
            # Builds stream for as long as they run: no worker timeout below the build's.
            "timeout": int(p.build_timeout_seconds) + 60,
            "graceful_timeout": int(p.stop_grace_seconds) + 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.settings.log_level.lower(),
            "proc_name": "moorage-controller",
            # No gunicorn control socket: two servers would share ~/.gunicorn/gunicorn.ctl.
            "control_socket_disable": True,
            "worker_exit": self._worker_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from moorage.platform.api import create_app

        self._runtime = self._make_runtime()
        return create_app(self.settings, self._runtime, build_environ=self.build_environ)

    def _make_runtime(self) -> Any:
        """The runtime ``MOORAGE_PLATFORM_RUNTIME`` names; the local one brings its nginx router."""
        kind = self.settings.platform.runtime
        if kind == "kubernetes":
            from moorage.platform.runtime.kubernetes import KubernetesRuntime

            return KubernetesRuntime(self.settings)
        from moorage.platform.runtime.supervised import SupervisedRuntime, ensure_running

        ensure_running(self.settings)
        return SupervisedRuntime(self.settings)

    def _worker_exit(self, _server: Any, _worker: Any) -> None:
        if self._runtime is not None:
            self._runtime.close()


def serve(settings: Settings, build_environ: Mapping[str, str]) -> None:
    if settings.platform.runtime not in RUNTIMES:
        raise ConfigurationError(
            f"MOORAGE_PLATFORM_RUNTIME={settings.platform.runtime!r}: use {' or '.join(RUNTIMES)}"
        )
    prepare_data_dir(settings.data_dir)
    ControllerServer(settings, build_environ).run()
