"""The pytest plugin: scenario files become pytest items.

`-k`, `-x`, `--lf`, `-n` (pytest-xdist: each worker starts its own environment) and
`--junitxml` work as pytest users expect. Registered through the `pytest11` entry point.

Settings are resolved once, with the precedence command line > environment > ini:
`--chaos-env` / `NATS_CHAOS_ENV` / `chaos_env`, `--chaos-seed` / `NATS_CHAOS_SEED`,
`--chaos-reports` / `NATS_CHAOS_REPORTS` / `chaos_reports`, and the target:
`--client` / `NATS_CHAOS_CLIENT` / `chaos_client` (`nats-py==2.8.0`, `nats-py@PATH`) and
`--server` / `NATS_CHAOS_SERVER` / `chaos_server` (`2.10.26`, `/path/to/nats-server`).
The target is installed once, by the controller, before any scenario runs.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

import harness
from harness.env import BACKENDS, make_environment
from harness.env.topology import SINGLE, Topology
from harness.errors import EnvError, HarnessError
from harness.infrastructure import Death, InfraEvent, Watch, errored
from harness.journal import JournalWriter
from harness.progress import Progress
from harness.scenario import Scenario, ScenarioError, load_file, resolve_seed
from harness.targets import TargetError, parse_client
from harness.targets.resolve import Target, resolve_target, target_slug

RECORD_KEY = "nats_chaos_record"
VERSIONS_KEY = "nats_chaos_versions"  # a worker's environment versions, for the controller's header
INFRA_KEY = "nats_chaos_infra"  # an environment death and what the run did about it
INVALID_ENV = "Invalid chaos environment {value!r} from {source}: expected one of " + ", ".join(BACKENDS)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("nats-chaos", "nats-chaos scenarios")
    g.addoption("--chaos-env", default=None, help="environment backend: local (default) or compose")
    g.addoption("--chaos-seed", default=None, help="run seed (each scenario derives its own); random if unset")
    g.addoption("--chaos-reports", default=None, help="directory for run reports (default: reports/)")
    g.addoption("--chaos-soak", default=None, metavar="SECONDS",
                help="run each soak scenario (one with `rounds:`) for SECONDS instead of its rounds")
    g.addoption("--chaos-flows", action="append", default=[], help="module with user flows to register (repeatable)")
    g.addoption("--chaos-known-issues", default=None,
                help="known issues for the report's known/new marks (default: known_issues/known_issues.yaml if present)")
    g.addoption("--client", dest="chaos_client", default=None,
                help="client under test: IMPL, IMPL==VERSION or IMPL@PATH (default: nats-py's pinned release)")
    g.addoption("--server", dest="chaos_server", default=None,
                help="nats-server under test: VERSION or PATH to a binary (default: the one `make setup` installed)")
    g.addoption("--cluster", dest="chaos_cluster", default=None, metavar="N",
                help="run every scenario on an N-node JetStream cluster (3); default: each scenario's own `cluster:`")
    parser.addini("chaos_env", "environment backend", default="local")
    parser.addini("chaos_client", "client under test (IMPL==VERSION or IMPL@PATH)", default="")
    parser.addini("chaos_server", "nats-server under test (VERSION or PATH)", default="")
    parser.addini("chaos_reports", "directory for run reports", default="reports")


def _resolve(config: pytest.Config, opt: str, env: str, ini: str | None, default: Any) -> tuple[Any, str]:
    v = config.getoption(opt)
    if v is not None:
        return v, f"--{opt.replace('_', '-')}"
    if os.environ.get(env):
        return os.environ[env], f"${env}"
    if ini is not None:
        iv = config.getini(ini)
        if iv:
            return iv, f"ini {ini}"
    return default, "default"


class ChaosSession:
    """Settings resolved once, the environment (started lazily) and the runner."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        backend, src = _resolve(config, "chaos_env", "NATS_CHAOS_ENV", "chaos_env", "local")
        if backend not in BACKENDS:
            raise pytest.UsageError(INVALID_ENV.format(value=backend, source=src))
        self.backend = backend
        winput = getattr(config, "workerinput", None)
        try:
            if winput and "chaos_seed" in winput:
                self.seed, self.seed_source = resolve_seed(winput["chaos_seed"], "controller")
            else:
                self.seed, self.seed_source = resolve_seed(config.getoption("chaos_seed"), "--chaos-seed")
        except ValueError as e:
            raise pytest.UsageError(f"Invalid chaos {e}") from None
        self.client_spec, self.client_source = _resolve(config, "chaos_client", "NATS_CHAOS_CLIENT", "chaos_client", None)
        self.server_spec, self.server_source = _resolve(config, "chaos_server", "NATS_CHAOS_SERVER", "chaos_server", None)
        try:  # syntax and implementation name now; installed on first use (get_target)
            parse_client(self.client_spec)
        except TargetError as e:
            raise pytest.UsageError(f"Invalid client target {self.client_spec!r} from {self.client_source}: {e.summary}") from None
        self.target: Target | None = None
        soak, soak_source = _resolve(config, "chaos_soak", "NATS_CHAOS_SOAK", None, "0")
        try:
            self.soak_seconds = float(soak)
        except ValueError:
            self.soak_seconds = -1.0
        if not 0 <= self.soak_seconds <= 7 * 86400:
            raise pytest.UsageError(f"Invalid chaos soak {soak!r} from {soak_source}: expected seconds from 0 to 604800")
        reports, _ = _resolve(config, "chaos_reports", "NATS_CHAOS_REPORTS", "chaos_reports", "reports")
        # Relative to the project (the ini file's folder), not to wherever the scenario files are.
        base = config.inipath.parent if config.inipath else config.invocation_params.dir
        self.reports = Path(base, reports) if not os.path.isabs(reports) else Path(reports)
        self.run_id = (
            (winput or {}).get("chaos_run_id")
            or os.environ.get("NATS_CHAOS_RUN_ID")
            or datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{self.seed}-{target_slug(self.client_spec, self.server_spec)}"
        )
        self.flow_modules = tuple(config.getoption("chaos_flows") or ())
        if self.flow_modules:  # before collection: a scenario file may name their flows
            from harness.flows import FlowModuleError, load_flow_modules

            try:
                load_flow_modules(self.flow_modules)
            except FlowModuleError as e:
                raise pytest.UsageError(str(e)) from None
        cluster, cluster_source = _resolve(config, "chaos_cluster", "NATS_CHAOS_CLUSTER", None, None)
        try:
            self.cluster: Topology | None = Topology.parse(cluster) if cluster is not None else None
        except ValueError as e:
            raise pytest.UsageError(f"Invalid cluster size {cluster!r} from {cluster_source}: {e}") from None
        self.env: Any = None
        self.runner: Any = None
        self.topology: Topology = SINGLE  # the current environment's
        # Environments of the other topologies this run met, kept running (a run that mixes
        # single-server and cluster scenarios starts each once): topology -> (env, runner).
        self.parked: dict[Topology, tuple[Any, Any]] = {}
        self.records: list[dict[str, Any]] = []
        self.infra: list[dict[str, Any]] = []
        self.env_error: HarnessError | None = None
        self.versions: dict[str, str] = {}
        self.started = datetime.datetime.now().isoformat(timespec="seconds")
        # The controller appends each record to journal.jsonl as its report arrives (under
        # xdist the workers' reports come here too), so a killed run keeps what it finished.
        self.writer: JournalWriter | None = None if winput else JournalWriter(self.reports / self.run_id)
        # Validated before anything runs (a malformed file is a usage error), used by the report.
        self.known = None if winput else _load_known(config)
        self.watch = Watch()
        self.progress: Progress | None = None
        self.live = False  # a live progress line on a terminal; plain lines otherwise
        self._tick_stop = threading.Event()
        self._tick_lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    def start_progress(self, total: int) -> None:
        if self.writer is not None and self.progress is None and self.config.get_verbosity() <= 0:
            self.progress = Progress(total)
            self.live = sys.stdout.isatty()
            if self.live:  # elapsed and the estimate move between scenarios too (some take 20 s)
                self._ticker = threading.Thread(target=self._tick, name="nats-chaos-progress", daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        while not self._tick_stop.wait(1.0):
            self._rewrite()

    def _rewrite(self) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        with self._tick_lock:
            if self.progress is not None and tr is not None:
                tr.rewrite(self.progress.live_line(), erase=True)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.start_progress(sum(isinstance(i, ScenarioItem) for i in session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.start_progress(len(ids))

    def show_progress(self, rec: dict[str, Any]) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.progress is None or tr is None:
            return
        self.progress.finished(rec)
        if self.live:
            self._rewrite()
        else:
            tr.write_line(self.progress.plain_line(rec))

    def end_progress(self) -> None:
        self._tick_stop.set()
        if self._ticker is not None:
            self._ticker.join(2)
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        with self._tick_lock:
            if self.live and self.progress is not None and tr is not None:
                tr.write("\n")
            self.progress = None

    def get_target(self) -> Target:
        """The target, installed (once per process; a cached install is ready in ~0.1 s)."""
        if self.target is None:
            self.target = resolve_target(self.client_spec, self.server_spec)
            if self.target.server.source != "default":
                # Both backends take the server as a binary (compose copies it into its image).
                os.environ["NATS_SERVER_BIN"] = self.target.server.binary
        return self.target

    def settings(self) -> Any:
        """The runner's bounds, with this run's soak duration."""
        from harness.runner import Settings

        return Settings(soak_seconds=self.soak_seconds)

    def topology_of(self, sc: Scenario) -> Topology:
        """Where scenario `sc` runs: `--cluster N` for every scenario, else its entry's `cluster:`."""
        return self.cluster if self.cluster is not None else Topology.parse(sc.cluster)

    def get_runner(self, topology: Topology = SINGLE) -> Any:
        if self.env_error is not None:
            raise self.env_error
        if topology != self.topology:
            if self.runner is not None:
                self.parked[self.topology] = (self.env, self.runner)
            self.env, self.runner = self.parked.pop(topology, (None, None))
            self.topology = topology
        if self.runner is None:
            from harness.runner import Runner

            try:
                self.get_target()
                self.env = make_environment(self.backend, topology=topology)
                self.env.__enter__()
                self.versions = self.env.versions()
                check_server_version(self.get_target(), self.versions.get("nats-server", ""), self.backend)
                self.runner = Runner(self.env, self.seed, settings=self.settings(), flow_modules=self.flow_modules,
                                     agent_command=self.get_target().command)
            except HarnessError as e:
                self.env_error = e
                self.stop()
                raise
        return self.runner

    def stop(self, everything: bool = True) -> None:
        """Stop the current environment (and, with `everything`, the parked ones too)."""
        pairs = [(self.env, self.runner)] + (list(self.parked.values()) if everything else [])
        if everything:
            self.parked.clear()
        self.env = self.runner = None
        for env, runner in pairs:
            if runner is not None:
                runner.close()
            if env is not None:
                env.stop()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect records (from this process or, under xdist, from the workers' reports)."""
        for k, v in report.user_properties:
            if k == VERSIONS_KEY and not self.versions:
                self.versions = json.loads(v)
        for k, v in report.user_properties:
            if k == INFRA_KEY and self.writer is not None:
                self.ensure_header()
                self.writer.infra(json.loads(v))
                self.infra.append(json.loads(v))
        for k, v in report.user_properties:
            if k == RECORD_KEY:
                rec = json.loads(v)
                self.records.append(rec)
                self.journal_record(rec)
                self.show_progress(rec)

    def ensure_header(self) -> None:
        if self.writer is not None and not self.writer.has_header:
            h = self.header()
            h["started"] = self.started
            self.writer.header(h)

    def journal_record(self, rec: dict[str, Any]) -> None:
        if self.writer is None:
            return
        self.ensure_header()
        self.writer.record(rec)

    def survive_infrastructure(self, rec: dict[str, Any], item: "ScenarioItem") -> dict[str, Any]:
        """A server that died during the scenario: the scenario is `error`, the environment is
        restarted (bounded), or, if the same server died right after its restart, the run ends."""
        if self.env is None:
            return rec
        try:
            deaths = [Death(name, ev) for name, ev in self.env.dead_components()]
        except Exception as e:  # the probe itself failed: the environment is unusable
            deaths = [Death("environment", f"{type(e).__name__}: {e}")]
        action = self.watch.decide(deaths)
        if action == "none":
            return rec
        d = deaths[0]
        rec = errored(rec, d)
        self.stop(everything=False)
        if action == "restart":
            self.watch.restarted(d.component)
            try:
                self.get_runner(self.topology)
                outcome = "restarted"
            except HarnessError as e:
                outcome = f"restart failed: {str(e).splitlines()[0]}"
                item.session.shouldstop = f"nats-chaos: the environment could not be restarted after {d.component} died"
        else:
            outcome = "ended the run"
            self.env_error = EnvError(
                f"{d.component} died again right after a restart (or after {self.watch.restarts} restarts); ending the run",
                evidence=d.evidence, hint="the machine, not the client, is failing: look at the log above")
            item.session.shouldstop = f"nats-chaos: {d.component} died again; ending the run"
        item.infra.append(InfraEvent(d.component, item.scenario.id, outcome, d.evidence[-3000:], self.watch.restarts).to_json())
        return rec

    def header(self) -> dict[str, Any]:
        if self.target is None and self.env_error is None:
            try:
                self.get_target()
            except HarnessError:
                pass
        from harness.runner import CLIENT_OPTIONS
        import dataclasses
        from importlib.metadata import version

        return {
            "run_id": self.run_id,
            "seed": self.seed,
            "seed_source": self.seed_source,
            "backend": self.backend,
            "harness": harness.__version__,
            "target": self.target.to_json() if self.target else {},
            "target_id": self.target.label if self.target else "",
            "harness_nats_py": version("nats-py"),  # the runner's and observer's own, never the target
            "nats_py": self.target.client.version if self.target and self.target.client.impl == "nats-py" else "",
            "nats_server": self.versions.get("nats-server", "?"),
            "toxiproxy": self.versions.get("toxiproxy", "?"),
            "client_options": CLIENT_OPTIONS,
            "settings": dataclasses.asdict(self.settings()),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
        }


_KEY = pytest.StashKey[ChaosSession]()


def _load_known(config: pytest.Config) -> Any:
    from harness.known_issues import DEFAULT_PATH, EMPTY, KnownIssueError, load_known_issues

    given = config.getoption("chaos_known_issues")
    path = Path(config.invocation_params.dir, given or DEFAULT_PATH)
    if given is None and not path.exists():
        return EMPTY
    try:
        return load_known_issues(path)
    except KnownIssueError as e:
        raise pytest.UsageError(str(e)) from None


def check_server_version(target: Target, running: str, backend: str) -> None:
    """The environment must run the server the target names (an image override could differ)."""
    want, got = target.server.version.lstrip("v"), running.lstrip("v")
    if got and want and got != want:
        raise EnvError(
            f"the {backend} environment runs nats-server {got}, but the target is nats-server {want}",
            hint="unset NATS_IMAGE (compose builds a local image from the target's binary), or pass --server " + got,
        )


def _term_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "quick: a scenario of the quick selection (`make chaos-quick`)")
    config.stash[_KEY] = cs = ChaosSession(config)
    config.pluginmanager.register(cs, "nats-chaos-session")
    # SIGTERM runs the same teardown as Ctrl-C: nothing the run started outlives it.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _term_to_interrupt)


def pytest_configure_node(node: Any) -> None:  # xdist controller -> worker: one seed, one run id
    cs = node.config.stash[_KEY]
    node.workerinput["chaos_seed"] = cs.seed
    node.workerinput["chaos_run_id"] = cs.run_id


def pytest_report_header(config: pytest.Config) -> list[str]:
    cs = config.stash[_KEY]
    return [f"nats-chaos {harness.__version__}: seed {cs.seed} ({cs.seed_source}), env {cs.backend}, run {cs.run_id}",
            f"target: client {cs.client_spec or 'default'} ({cs.client_source}), server {cs.server_spec or 'default'} ({cs.server_source})"]


def _named_on_command_line(config: pytest.Config, file_path: Path) -> bool:
    """A YAML file the user named explicitly (`harness run my.yaml`) is a scenario file."""
    for arg in config.args:
        p = Path(arg.split("::", 1)[0])
        if not p.is_absolute():
            p = Path(config.invocation_params.dir, p)
        if p.resolve() == file_path.resolve():
            return True
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and (
        file_path.parent.name == "scenarios"
        or file_path.name.endswith((".scenarios.yaml", ".scenarios.yml"))
        or _named_on_command_line(parent.config, file_path)
    ):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            scenarios = load_file(self.path)
        except ScenarioError as e:
            raise self.CollectError(str(e)) from None
        for sc in scenarios:
            item = ScenarioItem.from_parent(self, name=sc.id, scenario=sc)
            for tag in sc.tags:  # an entry's tags select with -m
                item.add_marker(tag)
            yield item


class ScenarioVerdict(Exception):
    """Raised by a scenario item whose verdict is not `passed`."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        super().__init__(record["verdict"])


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, **kw: Any) -> None:
        super().__init__(**kw)
        self.scenario = scenario
        self.record: dict[str, Any] | None = None
        self.infra: list[dict[str, Any]] = []  # environment deaths seen after this scenario

    def runtest(self) -> None:
        cs = self.config.stash[_KEY]
        runner = cs.get_runner(cs.topology_of(self.scenario))
        record = runner.run(self.scenario, replay=self.replay_command()).to_json()
        self.record = cs.survive_infrastructure(record, self)
        if self.record["verdict"] == "not_applicable":
            pytest.skip(f"not applicable: {self.record['reason']}")
        if self.record["verdict"] != "passed":
            raise ScenarioVerdict(self.record)

    def replay_command(self) -> str:
        cs = self.config.stash[_KEY]
        t = cs.target
        target = (f" --client '{t.client.spec}'" + (f" --server '{t.server.spec}'" if t.server.source != "default" else "")) if t else ""
        cluster = f" --cluster {cs.cluster.nodes}" if cs.cluster is not None and cs.cluster.is_cluster else ""
        return f"harness run '{self.replay_target()}' --seed {cs.seed} --env {cs.backend}{cluster}{target}"

    def replay_target(self) -> str:
        """`file::id` as the user can type it from where they ran (not from pytest's rootdir)."""
        try:
            path = self.path.relative_to(self.config.invocation_params.dir)
        except ValueError:
            path = self.path
        return f"{path}::{self.name}"

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioVerdict):
            return format_record(excinfo.value.record)
        if isinstance(excinfo.value, HarnessError):
            return f"ERROR (environment): {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.scenario.id}"


def format_record(r: dict[str, Any]) -> str:
    lines = [f"{r['verdict'].upper()}: {r['id']} — {r['reason']}"]
    for f in r["findings"]:
        lines.append(f"  [{f['check']}] {f['summary']}")
        if f["evidence"]:
            lines.append("      " + f["evidence"].replace("\n", "\n      ")[:3000])
    if r.get("replay"):
        lines.append(f"replay: {r['replay']}")
    return "\n".join(lines)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if isinstance(item, ScenarioItem) and call.when == "call":
        rec = item.record
        if rec is None and call.excinfo is not None:  # the environment or the harness broke
            sc = item.scenario
            rec = {
                "id": sc.id, "flow": sc.flow, "fault": sc.fault, "trigger": sc.trigger,
                "seed": sc.seed(item.config.stash[_KEY].seed), "verdict": "error",
                "reason": str(call.excinfo.value).splitlines()[0], "findings": [], "events": [],
                "timings": {"wall": call.duration, "inherent": 0.0, "overhead": call.duration},
                "replay": item.replay_command(),
            }
        if rec is not None:
            rec.setdefault("node", item.replay_target())  # what `harness gate` reruns
            if rec["verdict"] != "passed" and not rec.get("replay"):
                rec["replay"] = item.replay_command()
            for ev in item.infra:  # before the record: the journal says what happened, in order
                rep.user_properties.append((INFRA_KEY, json.dumps(ev, default=str)))
            rep.user_properties.append((RECORD_KEY, json.dumps(rec, default=str)))
            cs = item.config.stash[_KEY]
            if cs.versions:
                rep.user_properties.append((VERSIONS_KEY, json.dumps(cs.versions)))


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    """No dot per scenario where the plugin shows its own progress (the lines carry more)."""
    cs = config.stash.get(_KEY, None)
    if cs is not None and cs.progress is not None and report.when == "call" and any(
            k == RECORD_KEY for k, _ in report.user_properties):
        return report.outcome, "", ""
    return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cs = session.config.stash[_KEY]
    cs.end_progress()
    cs.stop()
    if hasattr(session.config, "workerinput") or not cs.records or cs.writer is None:
        return
    from harness.journal import read_journal
    from harness.report import write_outputs

    if any(r["verdict"] == "error" for r in cs.records):
        session.exitstatus = 2
    cs.writer.end(int(session.exitstatus))
    cs.writer.close()
    # Every output is built from the journal as written: `harness report` rebuilds the same.
    from harness.gate import decide

    journal = read_journal(cs.writer.path)
    path = write_outputs(journal, step_summary=True, update_latest=True, gate=decide([journal], cs.known))
    session.config.stash[_JOURNAL] = path


_JOURNAL = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    path = config.stash.get(_JOURNAL, None)
    cs = config.stash[_KEY]
    if path is None:
        return
    from collections import Counter

    c = Counter(r["verdict"] for r in cs.records)
    terminalreporter.write_sep("=", "nats-chaos")
    terminalreporter.write_line(
        " ".join(f"{v}={c.get(v, 0)}" for v in ("passed", "failed", "inconclusive", "error", "not_applicable"))
        + f"  seed={cs.seed}  target={cs.target.label if cs.target else '?'}"
    )
    for ev in cs.infra:
        terminalreporter.write_line(f"infrastructure: {ev['summary']}")
    terminalreporter.write_line(f"journal: {path}")
    terminalreporter.write_line(f"html:    {path.parent / 'report.html'}")
