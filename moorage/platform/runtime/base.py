"""The Runtime boundary: PaaS words only, taking immutable release objects.

Why this boundary: the controller decides *what* should run (which release, how many
processes of each type); a runtime decides *how* (child processes on this machine, or
Deployments on Kubernetes). Nothing Kubernetes- or process-specific crosses it.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from moorage.errors import UnprocessableError
from moorage.platform.router.config import SniCertificate

#: Receives one line of deploy/build progress for the client (``moorage[deploy]: …``).
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReleaseSpec:
    """Everything needed to run one release of one app."""

    app: str
    version: int
    #: Where the release's files are: a directory of the unpacked slug or source tree,
    #: or a slug URL the runtime fetches and unpacks itself.
    slug: str
    #: Config vars plus platform vars (MOORAGE_APP, MOORAGE_RELEASE, SOURCE_VERSION, …).
    env: Mapping[str, str]
    #: Procfile: process type → command.
    processes: Mapping[str, str]
    source_version: str = ""
    #: The owner's username (the Kubernetes runtime labels the app's namespace with it).
    owner: str = ""
    #: The app's service bindings as files (servicebinding.io): binding name → file name →
    #: content. The runtime projects them under a folder it names in ``SERVICE_BINDING_ROOT``,
    #: readable only by the app.
    binding_files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: Env vars whose value is the path of one binding file: var → ``<binding>/<file>``
    #: (``GOOGLE_APPLICATION_CREDENTIALS`` → ``bigquery/credentials``); not in ``env``.
    binding_paths: Mapping[str, str] = field(default_factory=dict)
    #: The uid (and gid) the app's processes run as, allocated by the controller for this
    #: app alone; a runtime that cannot switch users (not root, Kubernetes) ignores it.
    uid: int | None = None
    #: The slug at an HTTP(S) URL the controller signed for this app and release alone
    #: (no token or store credentials needed); for runtimes whose processes cannot read
    #: ``slug`` themselves (Kubernetes pods). Empty when the release has no stored slug.
    slug_url: str = ""


@dataclass(frozen=True)
class ProcessStatus:
    type: str
    number: int
    #: starting | up | crashed | stopping | down
    state: str
    release: int
    started_at: dt.datetime | None = None
    restarts: int = 0
    port: int | None = None
    pid: int | None = None

    @property
    def name(self) -> str:
        return f"{self.type}.{self.number}"


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    output: str


@dataclass(frozen=True)
class LogLine:
    timestamp: dt.datetime
    #: ``app[web.1]`` for app output, ``moorage[deploy]`` for platform events.
    source: str
    line: str


@dataclass
class Formation:
    """Process type → count, e.g. ``{"web": 3, "worker": 1}``."""

    counts: dict[str, int] = field(default_factory=dict)


class TlsSink(Protocol):
    """Told an app's whole TLS state whenever it changes (``certs.publish``).

    Moorage's router on the local runtime; the app's Ingress and its ``kubernetes.io/tls``
    Secrets on Kubernetes (``runtime.kubernetes_ingress``).
    """

    def https_refusal(self) -> str | None:
        """Why it cannot serve HTTPS now (told to the user), or ``None`` when it can."""
        ...

    def set_tls(self, app: str, certs: Sequence[SniCertificate], force_https: bool) -> None: ...


class Runtime(ABC):
    """What the controller knows of a runtime: the abstract methods, and three with defaults
    (custom domains, crash loops, certificates) for runtimes that route or watch nothing."""

    @abstractmethod
    def deploy(self, release: ReleaseSpec, formation: Mapping[str, int], progress: Progress) -> None:
        """Roll the app to ``release``: start new processes, wait healthy, switch, drain old.

        Raises ``moorage.errors.Error`` (with a message for the user) when the new
        release does not become healthy; the previous release then keeps serving.
        """

    @abstractmethod
    def scale(self, app: str, formation: Mapping[str, int], progress: Progress) -> None: ...

    @abstractmethod
    def status(self, app: str) -> list[ProcessStatus]: ...

    @abstractmethod
    def logs(self, app: str, lines: int = 100, follow: bool = False) -> Iterator[LogLine]: ...

    @abstractmethod
    def run_once(self, release: ReleaseSpec, command: str, timeout: float = 600.0) -> RunResult: ...

    def release_task(self, release: ReleaseSpec, command: str, timeout: float, output: Progress) -> None:
        """Heroku's release phase: run ``command`` once before the rollout, each line of its
        output to ``output``; raise ``moorage.errors.Error`` with the reason when it fails.

        By default a one-off run; the Kubernetes runtime makes it a Job.
        """
        result = self.run_once(release, command, timeout=timeout)
        for line in result.output.splitlines():
            output(line)
        if result.exit_code != 0:
            raise UnprocessableError(
                f"the release task `{command}` exited with status {result.exit_code}; "
                "fix it (see its output above) and deploy again"
            )

    @abstractmethod
    def restart(self, app: str, process_type: str | None, progress: Progress) -> None: ...

    @abstractmethod
    def destroy(self, app: str) -> None: ...

    def close(self) -> None:  # noqa: B027  (optional hook, not abstract)
        """Stop supervising (processes of the embedded runtime stop with it)."""

    def set_domains(self, app: str, domains: Iterable[str]) -> None:  # noqa: B027
        """Route ``domains`` (custom domains) to the app besides ``<app>.<base_domain>``.

        By default nothing: whatever routes to this runtime's apps routes the domains too;
        the controller keeps the list either way (``moorage domains``).
        """

    def crashed_release(self, app: str) -> int | None:
        """The running release's version when its processes crash-loop (shown as ``crashed``).

        ``None`` by default: a runtime that does not watch its processes reports none.
        """
        return None

    @property
    def tls_sink(self) -> TlsSink | None:
        """Where ``certs:add`` certificates go; ``None`` when nothing here serves HTTPS."""
        return None
