"""LocalRuntime: the embedded default, running releases as child processes of Moorage's
supervisor process (``moorage supervisor``, see ``daemon``; the controller reaches it
through ``supervised``), so apps outlive the controller.

Why: one machine and nothing to configure. Each process of the formation is a
supervised child (see ``supervisor``) started from the release's immutable directory
(see ``release_dir``); web processes get a free loopback port and join the router's
upstreams once healthy.

Every change rolls the same way (``_roll``): start the processes the new formation
needs, wait until they are up, switch the router to the healthy web processes (at run time, no
reload), wait until no request is in flight to the retired ones, then stop the processes no
longer wanted (SIGTERM to the group, SIGKILL after ``stop_grace_seconds``). If a new
process exits while booting or is not healthy within ``deploy_timeout_seconds``, the
new processes are stopped and an error naming the process and its last output is
raised; the old ones were never touched. Deploying the version already running keeps
its live processes, so the controller may call ``deploy`` again after a restart.

Of the Runtime interface's optional parts, ``set_domains`` routes custom domains besides
``<app>.<base_domain>``, ``crashed_release`` tells whether the running release is
crash-looping and ``tls_sink`` is the router. Progress callbacks receive plain messages (the same text is
logged with source ``moorage[deploy]``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from moorage.errors import Error, InvalidParametersError, NotFoundError, UnprocessableError
from moorage.platform import slug_store
from moorage.platform.identity import AppUser, app_identity, app_user
from moorage.platform.router import Router
from moorage.platform.router.config import validate_app, validate_hostname
from moorage.platform.runtime import binding_files, oneoff
from moorage.platform.runtime.base import LogLine, ProcessStatus, Progress, ReleaseSpec, RunResult, Runtime
from moorage.platform.runtime.formation import check_formation, describe
from moorage.platform.runtime.logbook import FileTail, LogBook
from moorage.platform.runtime.orphans import kill_orphans, record_processes
from moorage.platform.runtime.ports import LoopbackPorts
from moorage.platform.runtime.release_dir import (
    app_tmp,
    command_argv,
    prepare,
    process_env,
    release_path,
    remove_owned,
    remove_tree,
)
from moorage.platform.runtime.supervisor import Launch, ManagedProcess
from moorage.settings import Settings

log = logging.getLogger(__name__)

RUN_OUTPUT_LIMIT = 1024 * 1024


@dataclass
class _App:
    name: str
    book: LogBook
    access: FileTail | None
    release: ReleaseSpec | None = None
    formation: dict[str, int] = field(default_factory=dict)
    processes: dict[tuple[str, int], ManagedProcess] = field(default_factory=dict)
    domains: tuple[str, ...] = ()
    crash_reported: bool = False
    op_lock: threading.Lock = field(default_factory=threading.Lock)
    route_lock: threading.Lock = field(default_factory=threading.Lock)


class LocalRuntime(Runtime):
    def __init__(self, settings: Settings, router: Router | None) -> None:
        self.settings = settings
        self.router = router
        self.user = app_user(settings.platform)
        self._apps: dict[str, _App] = {}
        self._lock = threading.Lock()
        self._ports = LoopbackPorts()
        self._closed = threading.Event()
        self._tailer = threading.Thread(
            target=self._tail_access_logs, name="moorage-access-logs", daemon=True
        )
        self._tailer.start()

    def _fetch_slug(self, ref: str, dest: Path) -> Path:
        """Download a slug kept in the configured slug store (S3-compatible storage)."""
        return slug_store.store_from_settings(self.settings).fetch(ref, dest)

    # -- the Runtime interface -------------------------------------------------------------

    def deploy(self, release: ReleaseSpec, formation: Mapping[str, int], progress: Progress) -> None:
        counts = check_formation(release, formation)
        app = self._app(release.app)
        with app.op_lock:
            self._event(app, progress, f"Deploying v{release.version}")
            user = self._user(release)
            directory = prepare(self.settings.data_dir, release, user, self._fetch_slug)
            binding_files.materialise(self.settings.data_dir, release, user)
            same = app.release is not None and app.release.version == release.version
            self._roll(app, release, counts, replace=set() if same else None, progress=progress)
            self._event(app, progress, f"v{release.version} is up ({describe(counts)}) from {directory.name}")

    def scale(self, app: str, formation: Mapping[str, int], progress: Progress) -> None:
        state = self._running(app)
        with state.op_lock:
            release = self._release_of(state)
            counts = check_formation(release, formation, base=state.formation)
            self._roll(state, release, counts, replace=set(), progress=progress)
            self._event(state, progress, f"Scaled to {describe(counts)}")

    def restart(self, app: str, process_type: str | None, progress: Progress) -> None:
        state = self._running(app)
        with state.op_lock:
            release = self._release_of(state)
            if process_type is not None and process_type not in release.processes:
                raise InvalidParametersError(
                    f"process type {process_type!r} is not in the Procfile of {app} "
                    f"(types: {', '.join(sorted(release.processes)) or 'none'})"
                )
            types = None if process_type is None else {process_type}
            self._roll(state, release, dict(state.formation), replace=types, progress=progress)
            self._event(state, progress, f"Restarted {process_type or 'all processes'}")

    def status(self, app: str) -> list[ProcessStatus]:
        state = self._apps.get(validate_app(app))
        if state is None:
            return []
        processes = sorted(state.processes.values(), key=lambda p: (p.type, p.number))
        return [p.status() for p in processes]

    def logs(self, app: str, lines: int = 100, follow: bool = False) -> Iterator[LogLine]:
        return self._app(app).book.read(lines, follow)

    def run_once(self, release: ReleaseSpec, command: str, timeout: float = 600.0) -> RunResult:
        validate_app(release.app)
        argv = command_argv(self.settings.platform, command)
        user = self._user(release)
        directory = prepare(self.settings.data_dir, release, user, self._fetch_slug)
        tmp = app_tmp(self.settings.data_dir, release.app, user)
        root = binding_files.materialise(self.settings.data_dir, release, user)
        env = process_env(release, directory, tmp, "run.1", None, binding_files.binding_env(release, root))
        book = self._app(release.app).book
        book.write("moorage[run.1]", f"Starting process with command `{command}`")
        code, output = oneoff.run(argv, env, directory, user, timeout, RUN_OUTPUT_LIMIT)
        book.write("moorage[run.1]", f"Process exited with status {code}")
        return RunResult(code, output)

    def destroy(self, app: str) -> None:
        state = self._app(app)
        with state.op_lock:
            user = self._user(state.release) if state.release is not None else None
            self._stop_all(list(state.processes.values()))
            if user is not None and user.uid != self.user.uid:  # a uid of this app alone
                remove_owned(user.uid)  # what its processes left in /tmp, /var/tmp and /dev/shm
            state.processes = {}
            if self.router is not None:
                self.router.remove(app)
            with self._lock:
                self._apps.pop(app, None)
            state.book.close()
            data = self.settings.data_dir
            remove_tree(release_path(data, app, 0).parent)
            remove_tree(data / "tmp" / app)
            remove_tree(binding_files.app_folder(data, app))
            record_processes(data, app, [])
            state.book.path.unlink(missing_ok=True)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            apps = list(self._apps.values())
        self._stop_all([p for a in apps for p in a.processes.values()])
        for state in apps:
            state.processes = {}
            record_processes(self.settings.data_dir, state.name, [])
            state.book.close()

    # -- custom domains, crash loops, certificates -----------------------------------------

    def set_domains(self, app: str, domains: Iterable[str]) -> None:
        """Route ``domains`` (custom domains) to the app besides ``<app>.<base_domain>``."""
        names = tuple(validate_hostname(d) for d in domains)
        state = self._app(app)
        previous, state.domains = state.domains, names
        try:
            self._sync_routes(state)
        except Error:
            state.domains = previous
            raise

    @property
    def tls_sink(self) -> Router | None:
        """Where ``certs:add`` certificates go: the router (``controller.certs.TlsSink``)."""
        return self.router

    def crashed_release(self, app: str) -> int | None:
        """The running release's version when one of its processes is crash-looping."""
        state = self._apps.get(app)
        if state is None or state.release is None:
            return None
        looping = any(p.crash_looping for p in state.processes.values())
        return state.release.version if looping else None

    def hostnames(self, app: str) -> list[str]:
        state = self._app(app)
        return [f"{state.name}.{self.settings.platform.base_domain}", *state.domains]

    # -- rolling -------------------------------------------------------------------------

    def _roll(
        self,
        app: _App,
        release: ReleaseSpec,
        counts: dict[str, int],
        replace: set[str] | None,
        progress: Progress,
    ) -> None:
        """Start what ``counts`` needs, wait healthy, switch the router, stop the rest."""
        if not app.processes:
            kill_orphans(self.settings.data_dir, app.name)
        directory = release_path(self.settings.data_dir, release.app, release.version)
        tmp = app_tmp(self.settings.data_dir, app.name, self._user(release))
        keep: dict[tuple[str, int], ManagedProcess] = {}
        fresh: dict[tuple[str, int], ManagedProcess] = {}
        for ptype, count in counts.items():
            for number in range(1, count + 1):
                current = app.processes.get((ptype, number))
                reusable = (
                    current is not None
                    and current.release == release.version
                    and (replace is not None and ptype not in replace)
                    and current.state not in ("stopping", "down")
                )
                if reusable:
                    assert current is not None
                    keep[(ptype, number)] = current
                else:
                    fresh[(ptype, number)] = self._new_process(app, release, directory, tmp, ptype, number)
        if fresh:
            self._event(app, progress, f"Starting {', '.join(p.name for p in fresh.values())}")
        for process in fresh.values():
            process.start()
        deadline = time.monotonic() + self.settings.platform.deploy_timeout_seconds
        for process in fresh.values():
            failure = process.wait_ready(deadline)
            if failure is not None:
                self._fail(app, release, process, failure, list(fresh.values()), progress)
        old = [p for key, p in app.processes.items() if keep.get(key) is not p]
        before = (app.processes, app.release, app.formation)
        app.processes = {**keep, **fresh}
        app.release = release
        app.formation = {t: c for t, c in counts.items() if c > 0}
        app.crash_reported = False
        try:
            self._sync_routes(app)
        except Exception:
            # The router refused the switch: the old processes keep serving, the new ones go.
            app.processes, app.release, app.formation = before
            self._stop_all(list(fresh.values()))
            try:
                self._sync_routes(app)
            except Exception:
                log.exception("cannot restore the routes", extra={"app": app.name})
            raise
        self._record(app)
        if old:
            if self.router is not None and any(p.is_web for p in old):
                self.router.wait_drained()
            self._stop_all(old)
        binding_files.prune(self.settings.data_dir, app.name, keep={release.version})

    def _record(self, app: _App) -> None:
        """Write the app's live pids down, so a Moorage killed without cleaning up finds them."""
        record_processes(self.settings.data_dir, app.name, [p.pid for p in app.processes.values() if p.pid])

    def _fail(
        self,
        app: _App,
        release: ReleaseSpec,
        process: ManagedProcess,
        failure: str,
        started: list[ManagedProcess],
        progress: Progress,
    ) -> None:
        self._stop_all(started)  # also gives their ports back
        output = "\n".join(process.tail) or "(no output)"
        running = f"v{app.release.version} keeps running" if app.release else "nothing else was running"
        message = f"v{release.version} failed: {failure}; {running}. Last output of {process.name}:\n{output}"
        self._event(app, progress, message.splitlines()[0])
        raise UnprocessableError(message, process=process.name, output=output)

    def _new_process(
        self, app: _App, release: ReleaseSpec, directory: Path, tmp: Path, ptype: str, number: int
    ) -> ManagedProcess:
        port = self._ports.reserve() if ptype == "web" else None
        name = f"{ptype}.{number}"
        root = binding_files.binding_root(self.settings.data_dir, release)
        launch = Launch(
            argv=command_argv(self.settings.platform, release.processes[ptype]),
            env=process_env(release, directory, tmp, name, port, binding_files.binding_env(release, root)),
            cwd=directory,
            user=self._user(release),
        )
        return ManagedProcess(
            type=ptype,
            number=number,
            release=release.version,
            port=port,
            launch=launch,
            write_log=app.book.write,
            on_change=lambda p: self._on_change(app, p),
            backoff=(self.settings.platform.restart_backoff_seconds, 60.0),
        )

    def _on_change(self, app: _App, process: ManagedProcess) -> None:
        """A supervised process came up or crashed: update the router if it is routed."""
        if app.processes.get((process.type, process.number)) is not process:
            return
        self._record(app)  # a restart has a new pid
        if process.crash_looping and not app.crash_reported:
            app.crash_reported = True
            app.book.write("moorage[deploy]", f"v{process.release} crashed: {process.name} keeps exiting")
        if process.is_web:
            try:
                self._sync_routes(app)
            except Error:
                log.exception("cannot update the routes", extra={"app": app.name})

    def _sync_routes(self, app: _App) -> None:
        if self.router is None:
            return
        with app.route_lock:
            upstreams = sorted(
                ("127.0.0.1", p.port) for p in list(app.processes.values()) if p.is_web and p.healthy
            )
            self.router.set_routes(app.name, self.hostnames(app.name), upstreams)  # type: ignore[misc]

    def _stop_all(self, processes: list[ManagedProcess]) -> None:
        if not processes:
            return
        grace = self.settings.platform.stop_grace_seconds
        with ThreadPoolExecutor(max_workers=min(16, len(processes))) as pool:
            list(pool.map(lambda p: p.stop(grace), processes))
        self._ports.release(p.port for p in processes)

    # -- helpers ---------------------------------------------------------------------------

    def _user(self, release: ReleaseSpec) -> AppUser:
        """The release's own uid when we are root (see ``identity.app_identity``)."""
        return app_identity(self.user, release.app, release.uid)

    def _app(self, name: str) -> _App:
        validate_app(name)
        with self._lock:
            state = self._apps.get(name)
            if state is None:
                book = LogBook(self.settings.data_dir / "logs" / f"{name}.log")
                access = FileTail(self.router.access_log(name)) if self.router is not None else None
                state = self._apps[name] = _App(name=name, book=book, access=access)
            return state

    def _running(self, name: str) -> _App:
        state = self._apps.get(validate_app(name))
        if state is None or state.release is None:
            raise NotFoundError(f"app {name} has no deployed release; deploy it first")
        return state

    def _release_of(self, state: _App) -> ReleaseSpec:
        assert state.release is not None
        return state.release

    def _event(self, app: _App, progress: Progress, message: str) -> None:
        app.book.write("moorage[deploy]", message)
        progress(message)

    def _tail_access_logs(self) -> None:
        while not self._closed.wait(0.25):
            with self._lock:
                apps = list(self._apps.values())
            for state in apps:
                if state.access is not None:
                    for line in state.access.read_new():
                        state.book.write("moorage[router]", line)
