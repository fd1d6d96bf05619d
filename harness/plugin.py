"""The pytest plugin: scenario files become pytest items.

`-k`, `-x`, `--lf`, `-n` (pytest-xdist: each worker starts its own environment) and
`--junitxml` work as pytest users expect. Registered through the `pytest11` entry point.

Settings are resolved once (harness.session.resolve_settings, into a frozen ChaosSettings),
with the precedence command line > environment > ini:
`--chaos-env` / `NATS_CHAOS_ENV` / `chaos_env`, `--chaos-seed` / `NATS_CHAOS_SEED`,
`--chaos-reports` / `NATS_CHAOS_REPORTS` / `chaos_reports`, and the target:
`--client` / `NATS_CHAOS_CLIENT` / `chaos_client` (`nats-py==2.8.0`, `nats-py@PATH`) and
`--server` / `NATS_CHAOS_SERVER` / `chaos_server` (`2.10.26`, `/path/to/nats-server`).
The target is installed once, by the controller, before any scenario runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

import harness
from harness.env import Environment
from harness.env.topology import SINGLE, Topology
from harness.errors import HarnessError
from harness.infrastructure import InfraEvent, errored
from harness.progress import Progress
from harness.scenario import Scenario, ScenarioError, load_file
from harness.session import (
    ChaosSettings,
    Environments,
    ProgressDisplay,
    RunJournal,
    SettingsError,
    resolve_settings,
)
from harness.targets.resolve import Target, resolve_target

RECORD_KEY = "nats_chaos_record"
VERSIONS_KEY = "nats_chaos_versions"  # a worker's environment versions, for the controller's header
INFRA_KEY = "nats_chaos_infra"  # an environment death and what the run did about it
# pytest's options and ini values the settings are resolved from (harness.session.resolve_settings)
OPTIONS = ("chaos_env", "chaos_seed", "chaos_client", "chaos_server", "chaos_soak", "chaos_reports", "chaos_flows",
           "chaos_cluster")
INI = ("chaos_env", "chaos_client", "chaos_server", "chaos_reports")


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


def _settings(config: pytest.Config) -> ChaosSettings:
    """Every setting resolved once from pytest's options, the environment and the ini file."""
    options = {name: config.getoption(name) for name in OPTIONS}
    ini = {name: config.getini(name) for name in INI}
    base = config.inipath.parent if config.inipath else config.invocation_params.dir
    try:
        return resolve_settings(options, os.environ, ini, base=base, worker=getattr(config, "workerinput", None))
    except SettingsError as e:
        raise pytest.UsageError(str(e)) from None


class ChaosSession:
    """One run: its settings (resolved once), its environment and runner, its progress line
    and (in the controller) its journal."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = _settings(config)
        s = self.settings
        if s.flow_modules:  # before collection: a scenario file may name their flows
            from harness.flows import FlowModuleError, load_flow_modules

            try:
                load_flow_modules(s.flow_modules)
            except FlowModuleError as e:
                raise pytest.UsageError(str(e)) from None
        self.target: Target | None = None
        self.envs = Environments(s.backend, self.get_target, self._open_runner)
        self.records: list[dict[str, Any]] = []
        self.infra: list[dict[str, Any]] = []
        self._reported_versions: dict[str, str] = {}  # from the workers' reports (xdist controller)
        self.started = datetime.datetime.now().isoformat(timespec="seconds")
        # The controller appends each record to journal.jsonl as its report arrives (under
        # xdist the workers' reports come here too), so a killed run keeps what it finished.
        self.journal: RunJournal | None = None if s.worker else RunJournal(s.reports / s.run_id, self._journal_header)
        # Validated before anything runs (a malformed file is a usage error), used by the report.
        self.known = None if s.worker else _load_known(config)
        self.display = ProgressDisplay(lambda: config.pluginmanager.get_plugin("terminalreporter"))

    # -- settings, as the rest of the plugin reads them ------------------------------
    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def backend(self) -> str:
        return self.settings.backend

    @property
    def cluster(self) -> Topology | None:
        return self.settings.cluster

    @property
    def versions(self) -> dict[str, str]:
        """The environment's versions: this process's (the current one's first), else a worker's."""
        return self.envs.versions() or self._reported_versions

    # -- progress -------------------------------------------------------------------
    @property
    def progress(self) -> Progress | None:
        return self.display.progress

    def start_progress(self, total: int) -> None:
        if self.journal is not None and self.config.get_verbosity() <= 0:
            self.display.start(total)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.start_progress(sum(isinstance(i, ScenarioItem) for i in session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.start_progress(len(ids))

    # -- target, environment, runner -----------------------------------------------
    def get_target(self) -> Target:
        """The target, installed (once per process; a cached install is ready in ~0.1 s)."""
        if self.target is None:
            self.target = resolve_target(self.settings.client_spec, self.settings.server_spec)
            if self.target.server.source != "default":
                # Both backends take the server as a binary (compose copies it into its image).
                os.environ["NATS_SERVER_BIN"] = self.target.server.binary
        return self.target

    def runner_settings(self) -> Any:
        """The runner's bounds, with this run's soak duration."""
        from harness.runner import Settings

        return Settings(soak_seconds=self.settings.soak_seconds)

    def _open_runner(self, env: Environment, target: Target) -> Any:
        from harness.runner import Runner

        return Runner(env, self.seed, settings=self.runner_settings(), flow_modules=self.settings.flow_modules,
                      agent_command=target.command)

    def topology_of(self, sc: Scenario) -> Topology:
        """Where scenario `sc` runs: `--cluster N` for every scenario, else its entry's `cluster:`."""
        return self.cluster if self.cluster is not None else Topology.parse(sc.cluster)

    def get_runner(self, topology: Topology = SINGLE) -> Any:
        """The runner on a running environment of `topology` (see session.Environments)."""
        return self.envs.runner(topology)

    def stop(self) -> None:
        self.envs.close()

    def survive_infrastructure(self, rec: dict[str, Any], item: "ScenarioItem") -> dict[str, Any]:
        """A server that died during the scenario: the scenario is `error`, the environment is
        restarted (bounded), or, if the same server died right after its restart, the run ends."""
        survival = self.envs.current.survive()
        if survival is None:
            return rec
        d = survival.death
        if survival.stop_session:
            item.session.shouldstop = survival.stop_session
        item.infra.append(InfraEvent(d.component, item.scenario.id, survival.outcome, d.evidence[-3000:],
                                     self.envs.watch.restarts).to_json())
        return errored(rec, d)

    # -- reports from this process or, under xdist, from the workers ---------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect records (from this process or, under xdist, from the workers' reports)."""
        for k, v in report.user_properties:
            if k == VERSIONS_KEY and not self.versions:
                self._reported_versions = json.loads(v)
        for k, v in report.user_properties:
            if k == INFRA_KEY and self.journal is not None:
                self.journal.infra(json.loads(v))
                self.infra.append(json.loads(v))
        for k, v in report.user_properties:
            if k == RECORD_KEY:
                rec = json.loads(v)
                self.records.append(rec)
                if self.journal is not None:
                    self.journal.record(rec)
                self.display.finished(rec)

    def _journal_header(self) -> dict[str, Any]:
        h = self.header()
        h["started"] = self.started
        return h

    def header(self) -> dict[str, Any]:
        if self.target is None and self.envs.error is None:
            try:
                self.get_target()
            except HarnessError:
                pass
        from harness.runner import CLIENT_OPTIONS
        from importlib.metadata import version

        return {
            "run_id": self.settings.run_id,
            "seed": self.seed,
            "seed_source": self.settings.seed_source,
            "backend": self.backend,
            "harness": harness.__version__,
            "target": self.target.to_json() if self.target else {},
            "target_id": self.target.label if self.target else "",
            "harness_nats_py": version("nats-py"),  # the runner's and observer's own, never the target
            "nats_py": self.target.client.version if self.target and self.target.client.impl == "nats-py" else "",
            "nats_server": self.versions.get("nats-server", "?"),
            "toxiproxy": self.versions.get("toxiproxy", "?"),
            "client_options": CLIENT_OPTIONS,
            "settings": dataclasses.asdict(self.runner_settings()),
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


def _term_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "quick: a scenario of the quick selection (`make chaos-quick`)")
    config.addinivalue_line("markers", "alone: a scenario judged alone, in the serial lane (harness/schedule.py)")
    config.stash[_KEY] = cs = ChaosSession(config)
    config.pluginmanager.register(cs, "nats-chaos-session")
    # SIGTERM runs the same teardown as Ctrl-C: nothing the run started outlives it.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _term_to_interrupt)


def pytest_configure_node(node: Any) -> None:  # xdist controller -> worker: one seed, one run id, one order
    cs = node.config.stash[_KEY]
    node.workerinput["chaos_seed"] = cs.seed
    node.workerinput["chaos_run_id"] = cs.settings.run_id
    node.workerinput["chaos_durations"] = _durations(node.config)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: as many scenarios in flight as the machine holds (harness/schedule.py).
    (tryfirst: the hook takes the first answer, and xdist's own, the core count, came first
    whenever the plugins registered in another order, as with `-p no:randomly`, which
    `harness run` passes.)"""
    from harness.schedule import choose_workers, machine, may_start_clusters

    cluster = config.getoption("chaos_cluster", None) or os.environ.get("NATS_CHAOS_CLUSTER")
    clusters = may_start_clusters(cluster, [str(a) for a in config.args] or ["scenarios"])
    config.stash[_CONCURRENCY] = c = choose_workers(machine(), clusters=clusters)
    return c.workers


def _durations(config: pytest.Config) -> dict[str, float]:
    """Each scenario's last measured wall time, read once (by the controller under xdist, so
    every worker orders its collection the same way)."""
    got = config.stash.get(_DURATIONS, None)
    if got is None:
        winput = getattr(config, "workerinput", None)
        if winput is not None and "chaos_durations" in winput:
            got = dict(winput["chaos_durations"])
        else:
            from harness.schedule import last_durations

            cs = config.stash[_KEY]
            got = last_durations(cs.settings.reports, exclude=cs.settings.run_id)
        config.stash[_DURATIONS] = got
    return got


def _lane(config: pytest.Config) -> Any:
    """The run's serial lane, for a worker among several (None in-process: always alone)."""
    winput = getattr(config, "workerinput", None)
    if not winput or int(winput.get("workercount", 1)) < 2:
        return None
    lane = config.stash.get(_LANE, None)
    if lane is None:
        from harness.schedule import Lane

        cs = config.stash[_KEY]
        config.stash[_LANE] = lane = Lane(cs.settings.reports / cs.settings.run_id)
    return lane


_LANE = pytest.StashKey[Any]()
_CONCURRENCY = pytest.StashKey[Any]()
_DURATIONS = pytest.StashKey[dict]()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scenarios start longest first (by their last measured duration, else their declared
    holds and timeout), so the run does not end on a straggler; other items keep their places."""
    from harness.schedule import order

    slots = [i for i, it in enumerate(items) if isinstance(it, ScenarioItem)]
    if len(slots) < 2:
        return
    scenarios = [items[i] for i in slots]
    ranked = order([it.scenario for it in scenarios], _durations(config))
    for slot, k in zip(slots, ranked):
        items[slot] = scenarios[k]


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[_KEY].settings
    lines = [f"nats-chaos {harness.__version__}: seed {s.seed} ({s.seed_source}), env {s.backend}, run {s.run_id}",
             f"target: client {s.client_spec or 'default'} ({s.client_source}), server {s.server_spec or 'default'} ({s.server_source})"]
    conc = config.stash.get(_CONCURRENCY, None)
    if conc is not None:
        lines.append(f"schedule: -n auto: {conc.describe()}; longest first")
    return lines


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
        from harness.schedule import declared_alone, in_lane

        cs = self.config.stash[_KEY]
        topology = cs.topology_of(self.scenario)
        runner = cs.get_runner(topology)
        record = in_lane(_lane(self.config),  # judged alone if a busy machine may have made its verdict
                         lambda: runner.run(on_topology(self.scenario, topology), replay=self.replay_command()).to_json(),
                         alone=declared_alone(self.scenario))
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


def on_topology(sc: Scenario, topology: Topology) -> Scenario:
    """The scenario as it runs on `topology`: on a cluster (`--cluster 3`) a flow whose entry does
    not say `replicas` gets replicated streams, as a user of a cluster would have them."""
    if topology.is_cluster and "replicas" not in sc.params:
        return dataclasses.replace(sc, params={**sc.params, "replicas": topology.nodes}, cluster=topology.nodes)
    return dataclasses.replace(sc, cluster=topology.nodes) if sc.cluster != topology.nodes else sc


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
    cs.display.end()
    cs.stop()
    if cs.journal is None:  # a worker's
        return
    from harness.schedule import Lane

    Lane.remove_files(cs.settings.reports / cs.settings.run_id)
    if not cs.records:  # nothing ran
        return
    from harness.journal import read_journal
    from harness.report import write_outputs

    if any(r["verdict"] == "error" for r in cs.records):
        session.exitstatus = 2
    cs.journal.end(int(session.exitstatus))
    # Every output is built from the journal as written: `harness report` rebuilds the same.
    from harness.gate import decide

    journal = read_journal(cs.journal.path)
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
    alone = [r for r in cs.records if r.get("lane")]
    if alone:
        terminalreporter.write_line("judged alone (serial lane), a busy machine may have made the first verdict: "
                                    + ", ".join(f"{r['id']} ({r['lane']['first_verdict']} -> {r['verdict']})" for r in alone))
    terminalreporter.write_line(f"journal: {path}")
    terminalreporter.write_line(f"html:    {path.parent / 'report.html'}")
