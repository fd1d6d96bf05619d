"""The pieces of a chaos run's session that the pytest plugin (harness/plugin.py) puts together.

- `ChaosSettings` / `resolve_settings`: every setting resolved once into a frozen record,
  each with the precedence option > environment variable > ini > default (as pytest-timeout
  does), a bad value naming where it came from. Pure: hand it mappings, get a record.
- `EnvironmentHolder`: the environment and the runner on it, started on first use and held
  in an `ExitStack` (the environment entered with `with`, the runner closed before it);
  `restart()` after a server died outside a fault, bounded by `infrastructure.Watch`.
- `ProgressDisplay`: the live progress line (a ticker thread on a terminal, plain lines
  otherwise).
- `RunJournal`: the controller's journal writer (header written once, before the first
  record or infrastructure event).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.env import BACKENDS, Environment, make_environment
from harness.env.topology import SINGLE, Topology
from harness.errors import EnvError, HarnessError
from harness.infrastructure import Death, Watch
from harness.journal import JournalWriter
from harness.progress import Progress
from harness.scenario import resolve_seed
from harness.targets import TargetError, parse_client
from harness.targets.resolve import Target, target_slug

INVALID_ENV = "Invalid chaos environment {value!r} from {source}: expected one of " + ", ".join(BACKENDS)
MAX_SOAK_SECONDS = 7 * 86400


class SettingsError(ValueError):
    """A setting with a bad value; the message names the value and where it came from."""


@dataclasses.dataclass(frozen=True)
class ChaosSettings:
    """A run's settings, each with where it came from (for the header and for error messages)."""

    backend: str
    backend_source: str
    seed: int
    seed_source: str
    client_spec: str | None
    client_source: str
    server_spec: str | None
    server_source: str
    soak_seconds: float
    reports: Path
    run_id: str
    flow_modules: tuple[str, ...] = ()
    worker: bool = False  # an xdist worker: the controller writes the journal and the reports
    cluster: Topology | None = None  # --cluster N: every scenario on it; None: each scenario's own
    cluster_source: str = "default"


def pick(
    options: Mapping[str, Any], environ: Mapping[str, str], ini: Mapping[str, str],
    opt: str, env: str, ini_key: str | None, default: Any,
) -> tuple[Any, str]:
    """One setting's value and its source: option > $env > ini > default (empty counts as unset)."""
    v = options.get(opt)
    if v is not None:
        return v, f"--{opt.replace('_', '-')}"
    if environ.get(env):
        return environ[env], f"${env}"
    if ini_key is not None and ini.get(ini_key):
        return ini[ini_key], f"ini {ini_key}"
    return default, "default"


def resolve_settings(
    options: Mapping[str, Any],
    environ: Mapping[str, str],
    ini: Mapping[str, str],
    *,
    base: Path,
    worker: Mapping[str, Any] | None = None,
    now: datetime.datetime | None = None,
) -> ChaosSettings:
    """Resolve every setting once. `options` are pytest's (`chaos_env`, ...), `ini` its ini
    values, `base` the folder a relative reports path is taken from, `worker` an xdist
    worker's input (the controller's seed and run id). Raises SettingsError."""

    def get(opt: str, env: str, ini_key: str | None, default: Any) -> tuple[Any, str]:
        return pick(options, environ, ini, opt, env, ini_key, default)

    backend, backend_source = get("chaos_env", "NATS_CHAOS_ENV", "chaos_env", "local")
    if backend not in BACKENDS:
        raise SettingsError(INVALID_ENV.format(value=backend, source=backend_source))
    try:
        if worker and "chaos_seed" in worker:
            seed, seed_source = resolve_seed(worker["chaos_seed"], "controller")
        else:
            seed, seed_source = resolve_seed(options.get("chaos_seed"), "--chaos-seed")
    except ValueError as e:
        raise SettingsError(f"Invalid chaos {e}") from None
    client_spec, client_source = get("chaos_client", "NATS_CHAOS_CLIENT", "chaos_client", None)
    server_spec, server_source = get("chaos_server", "NATS_CHAOS_SERVER", "chaos_server", None)
    try:  # syntax and implementation name now; installed on first use
        parse_client(client_spec)
    except TargetError as e:
        raise SettingsError(f"Invalid client target {client_spec!r} from {client_source}: {e.summary}") from None
    soak, soak_source = get("chaos_soak", "NATS_CHAOS_SOAK", None, "0")
    try:
        soak_seconds = float(soak)
    except ValueError:
        soak_seconds = -1.0
    if not 0 <= soak_seconds <= MAX_SOAK_SECONDS:
        raise SettingsError(
            f"Invalid chaos soak {soak!r} from {soak_source}: expected seconds from 0 to {MAX_SOAK_SECONDS}"
        )
    cluster, cluster_source = get("chaos_cluster", "NATS_CHAOS_CLUSTER", None, None)
    try:
        topology = Topology.parse(cluster) if cluster is not None else None
    except ValueError as e:
        raise SettingsError(f"Invalid cluster size {cluster!r} from {cluster_source}: {e}") from None
    reports, _ = get("chaos_reports", "NATS_CHAOS_REPORTS", "chaos_reports", "reports")
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    run_id = (
        (worker or {}).get("chaos_run_id")
        or environ.get("NATS_CHAOS_RUN_ID")
        or f"{stamp}-{seed}-{target_slug(client_spec, server_spec)}"
    )
    return ChaosSettings(
        backend=backend,
        backend_source=backend_source,
        seed=seed,
        seed_source=seed_source,
        client_spec=client_spec,
        client_source=client_source,
        server_spec=server_spec,
        server_source=server_source,
        soak_seconds=soak_seconds,
        # Relative to the project (the ini file's folder), not to wherever the scenario files are.
        reports=Path(reports) if os.path.isabs(reports) else Path(base, reports),
        run_id=run_id,
        flow_modules=tuple(options.get("chaos_flows") or ()),
        worker=bool(worker),
        cluster=topology,
        cluster_source=cluster_source,
    )


def check_server_version(target: Target, running: str, backend: str) -> None:
    """The environment must run the server the target names (an image override could differ)."""
    want, got = target.server.version.lstrip("v"), running.lstrip("v")
    if got and want and got != want:
        raise EnvError(
            f"the {backend} environment runs nats-server {got}, but the target is nats-server {want}",
            hint="unset NATS_IMAGE (compose builds a local image from the target's binary), or pass --server " + got,
        )


class EnvironmentHolder:
    """The environment of one topology and the runner on it: started on first use, stopped by `close()`.

    `open` is given the running environment and returns the runner (anything with `close()`);
    both are held in one `ExitStack`, so the runner is closed before the environment stops,
    on every path (a failed start included). A start that failed is remembered: every later
    `runner()` raises the same error at once instead of starting again.
    """

    def __init__(
        self,
        backend: str,
        target: Callable[[], Target],
        open: Callable[[Environment, Target], Any],
        *,
        topology: Topology = SINGLE,
        watch: Watch | None = None,
    ) -> None:
        self.backend = backend
        self.topology = topology
        self._target = target
        self._open = open
        self._held = contextlib.ExitStack()
        self.env: Environment | None = None
        self._runner: Any = None
        self.error: HarnessError | None = None
        self.versions: dict[str, str] = {}
        self.watch = watch or Watch()  # a session's holders share one: restarts are bounded per run

    def runner(self) -> Any:
        if self.error is not None:
            raise self.error
        if self._runner is None:
            try:
                target = self._target()
                with contextlib.ExitStack() as stack:
                    env = stack.enter_context(make_environment(self.backend, topology=self.topology))
                    self.versions = env.versions()
                    check_server_version(target, self.versions.get("nats-server", ""), self.backend)
                    runner = self._open(env, target)
                    stack.callback(runner.close)
                    self._held = stack.pop_all()
                self.env, self._runner = env, runner
            except HarnessError as e:
                self.error = e
                raise
        return self._runner

    def close(self) -> None:
        """Close the runner, then stop the environment (safe to call twice)."""
        held, self._held = self._held, contextlib.ExitStack()
        self.env, self._runner = None, None
        held.close()

    def deaths(self) -> list[Death]:
        """Servers of the running environment that died (outside a fault)."""
        assert self.env is not None
        try:
            return [Death(name, ev) for name, ev in self.env.dead_components()]
        except Exception as e:  # the probe itself failed: the environment is unusable
            return [Death("environment", f"{type(e).__name__}: {e}")]

    def survive(self) -> Survival | None:
        """After a scenario: None if every server is alive; else stop, then restart (bounded by
        `watch`) or give up (every later `runner()` raises why)."""
        if self.env is None:
            return None
        deaths = self.deaths()
        action = self.watch.decide(deaths)
        if action == "none":
            return None
        d = deaths[0]
        self.close()
        if action == "restart":
            self.watch.restarted(d.component)
            try:
                self.runner()
                return Survival(d, "restarted", None)
            except HarnessError as e:
                return Survival(d, f"restart failed: {str(e).splitlines()[0]}",
                                f"nats-chaos: the environment could not be restarted after {d.component} died")
        self.error = EnvError(
            f"{d.component} died again right after a restart (or after {self.watch.restarts} restarts); ending the run",
            evidence=d.evidence, hint="the machine, not the client, is failing: look at the log above")
        return Survival(d, "ended the run", f"nats-chaos: {d.component} died again; ending the run")


class Environments:
    """The environments of a run, one `EnvironmentHolder` per topology it meets (a run that
    mixes single-server and cluster scenarios starts each once and keeps it running), sharing
    one `Watch` (restarts are bounded per run); `topology` is the one the last scenario used."""

    def __init__(self, backend: str, target: Callable[[], Target], open: Callable[[Environment, Target], Any]) -> None:
        self._make = lambda topology: EnvironmentHolder(backend, target, open, topology=topology, watch=self.watch)
        self.watch = Watch()
        self.holders: dict[Topology, EnvironmentHolder] = {}
        self.topology: Topology = SINGLE

    @property
    def current(self) -> EnvironmentHolder:
        if self.topology not in self.holders:
            self.holders[self.topology] = self._make(self.topology)
        return self.holders[self.topology]

    @property
    def error(self) -> HarnessError | None:
        """The first environment that could not start (or died once too often), if any."""
        return next((h.error for h in self.holders.values() if h.error is not None), None)

    def runner(self, topology: Topology) -> Any:
        """The runner on `topology`'s environment (started on first use). An environment that
        failed ends every later scenario at once, whatever its topology."""
        if self.error is not None:
            raise self.error
        self.topology = topology
        return self.current.runner()

    def versions(self) -> dict[str, str]:
        """The versions the environments run, the current one's first ({} before any started)."""
        first = self.holders.get(self.topology)
        started = [h.versions for h in (first, *self.holders.values()) if h is not None and h.versions]
        return started[0] if started else {}

    def close(self) -> None:
        """Stop every environment (each runner closed before its environment)."""
        for h in self.holders.values():
            h.close()


@dataclasses.dataclass(frozen=True)
class Survival:
    """What `EnvironmentHolder.survive` did about a server that died."""

    death: Death
    outcome: str  # "restarted", "restart failed: ...", "ended the run"
    stop_session: str | None  # why the pytest session should stop, or None


class ProgressDisplay:
    """One line per finished scenario, or on a terminal a live line rewritten every second."""

    def __init__(self, terminal: Callable[[], Any]) -> None:
        self._terminal = terminal  # pytest's terminal reporter, or None
        self.progress: Progress | None = None
        self.live = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    def start(self, total: int) -> None:
        if self.progress is not None:
            return
        self.progress = Progress(total)
        self.live = sys.stdout.isatty()
        if self.live:  # elapsed and the estimate move between scenarios too (some take 20 s)
            self._ticker = threading.Thread(target=self._tick, name="nats-chaos-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._rewrite()

    def _rewrite(self) -> None:
        tr = self._terminal()
        with self._lock:
            if self.progress is not None and tr is not None:
                tr.rewrite(self.progress.live_line(), erase=True)

    def finished(self, rec: dict[str, Any]) -> None:
        tr = self._terminal()
        if self.progress is None or tr is None:
            return
        self.progress.finished(rec)
        if self.live:
            self._rewrite()
        else:
            tr.write_line(self.progress.plain_line(rec))

    def end(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2)
        tr = self._terminal()
        with self._lock:
            if self.live and self.progress is not None and tr is not None:
                tr.write("\n")
            self.progress = None


class RunJournal:
    """The controller's journal.jsonl, appended as each report arrives (a killed run keeps
    what it finished); the header is written once, before the first entry."""

    def __init__(self, run_dir: Path, header: Callable[[], dict[str, Any]]) -> None:
        self.writer = JournalWriter(run_dir)
        self._header = header

    @property
    def path(self) -> Path:
        return self.writer.path

    def ensure_header(self) -> None:
        if not self.writer.has_header:
            self.writer.header(self._header())

    def record(self, rec: dict[str, Any]) -> None:
        self.ensure_header()
        self.writer.record(rec)

    def infra(self, event: dict[str, Any]) -> None:
        self.ensure_header()
        self.writer.infra(event)

    def end(self, exitstatus: int) -> None:
        self.writer.end(exitstatus)
        self.writer.close()
