"""Run one scenario: isolated names -> baseline -> flow -> trigger -> inject -> hold -> heal
-> let the flow finish -> the flow's cleanup -> checks -> record.

Faults are healed in `finally`, always; no agent outlives its scenario; every step is
a timestamped event on the record instead of an exception that escapes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
import time
from typing import Any, Callable, Iterator

from harness import faults, triggers
from harness.agent.runner_side import AgentError, AgentPool, AgentProcess
from harness.agent.snapshot import Snapshot
from harness import checks
from harness import clusterview
from harness.clusterview import cluster_leader_event
from harness.checks import AFTER_CLOSE, AFTER_FLOW, Baseline, Finding, ProbeFailed, settle
from harness.checks.iterators import FlowEnd
from harness.checks.memory import MemorySeries
from harness.env.base import Environment
from harness.errors import HarnessError
from harness.flows import FLOWS, FlowSpec, Names
from harness.observer import Observer, stream_for
from harness.scenario import Scenario
from harness.targets import AgentCommand

VERDICTS = ("passed", "failed", "inconclusive", "error", "not_applicable")


class NotApplicable(Exception):
    """The client under test lacks the flow's API (an older release): reported apart, like a skip."""
MIN_SOAK_ROUNDS = 10  # a soak by duration runs at least this many rounds (a slope needs them)
MAX_ROUNDS = 100_000
ACTION_LIMIT = 60.0  # an agent request for a drain action gives up after this (the agent dies sooner)

# The client under test is configured like an application that wants to notice a dead
# link quickly and keep trying; recorded in the run header.
CLIENT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 2,
    "reconnect_time_wait": 0.25,
    "max_reconnect_attempts": -1,
    "ping_interval": 1,
    "max_outstanding_pings": 2,
}


def not_applicable(hello: dict[str, Any], spec: FlowSpec, trigger: str = "") -> str:
    """Why the agent's client cannot run the flow ("" if it can), from the agent's hello: the
    flow, or the flow under one trigger (`flow@trigger`: a moment this client's flow never has)."""
    client = hello.get("client") or {}
    who = f"{client.get('impl', 'the client')} {client.get('version', '')}".strip()
    na = hello.get("not_applicable") or {}
    why = na.get(spec.name) or (na.get(f"{spec.name}@{trigger}") if trigger else None)
    if why:
        return f"{who}: {why}"
    if spec.module in (hello.get("failed_modules") or {}):
        return f"{who}: {hello['failed_modules'][spec.module]}"
    if hello.get("flows") is not None and spec.name not in hello["flows"]:
        return f"{who}: the agent has no flow {spec.name}"
    return ""


def flow_deadline(timeout: float) -> float:
    """The flow's own deadline: before the runner's (the scenario's timeout), with room for
    the last bounded call (fetch_timeout, next_timeout: 2 s by default) to return."""
    return max(timeout - 3.0, timeout * 0.5)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Bounds the runner applies; shown in the run header."""

    leak_grace: float = 1.0  # a leaky task/subscription/consumer gets this long to go away
    stuck_after: float = 3.0  # after the terminal event, a pending call must resolve within this
    recovery_bound: float = 10.0  # after heal, the same connection must answer within this
    consumer_wait: float = 7.0  # wait at most this long for the server to reap an inactive consumer
    pacing_kbps: int = 512  # link speed while a `transfer` trigger waits for its moment
    interest_bound: float = 5.0  # an interest stream must be empty this long after every consumer acked all
    soak_seconds: float = 0.0  # > 0: a soak scenario runs rounds for this long instead of its `rounds`


@dataclasses.dataclass(frozen=True)
class Record:
    """What happened in one scenario."""

    id: str
    flow: str
    fault: str
    trigger: str
    seed: int
    verdict: str
    reason: str
    findings: tuple[Finding, ...]
    events: tuple[dict[str, Any], ...]
    timings: dict[str, float]
    replay: str = ""
    # Per-round series of a soak, by name: {"memory": MemorySeries.to_json()} (for the report's plots)
    series: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The scenario's named steps (prepare, flow, end, checks after the flow, close, checks after
    # close): start and end on the record's clock, and each one's inherent share and overhead.
    phases: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["findings"] = [f.to_json() for f in self.findings]
        d["events"] = list(self.events)
        return d


class RunContext:
    """Everything a trigger, fault or check may look at during one scenario.

    It is the checks' `Sources` (harness.checks): the baseline, the flow's outcome and end,
    and bounded reads of the agent and the server.
    """

    def __init__(self, env: Environment, observer: Observer, scenario: Scenario, spec: FlowSpec, names: Names,
                 settings: Settings = Settings()) -> None:
        self.env, self.observer, self.scenario, self.spec, self.names = env, observer, scenario, spec, names
        self.settings = settings
        self.agent: AgentProcess = None  # type: ignore[assignment]
        self.object_stream = stream_for(spec, names)
        self.t0 = time.monotonic()
        self.timeline: list[dict[str, Any]] = []
        self.inherent = 0.0  # seconds spent waiting on the client, the server or a fault: not overhead
        self.phases: list[dict[str, Any]] = []  # the scenario's named steps, as they ended
        self.injected_at = 0.0
        self.server_was_running_at_inject = True
        self.action_result: dict[str, Any] | None = None
        self.action_name = ""
        self.action_thread: threading.Thread | None = None
        self.cid: int | None = None  # the server's id of the client's connection (for /connz)
        self.outcome: dict[str, Any] | None = None  # the flow's outcome event, once it ended
        self.baseline = Baseline()
        self.flow_end = FlowEnd(bound=settings.stuck_after)
        self.faulted = not scenario.is_control
        fault = faults.resolve(scenario.fault) if self.faulted else None
        # A fault or a flow that closes the client's connection (a worker's shutdown drain).
        self.client_open = (fault is None or not fault.closes_client) and not spec.closes_client
        self.consumer_name = names.consumer
        self.leak_grace = settings.leak_grace
        self.recovery_bound = settings.recovery_bound
        self.consumer_wait = settings.consumer_wait
        self.interest_bound = settings.interest_bound
        self.on_cluster = clusterview.is_cluster(env)
        self.samples: list[dict[str, Any]] = []  # a soak's per-round memory samples (agent and server)
        self.held_judged = False  # the terminal event's bound passed while the fault held: judged then
        self.api_requests: list[str] = []  # JetStream API requests seen by an armed trigger
        self.client_closed = False  # the runner's close of the client's connection returned
        self.fault_state: dict[str, Any] = {}  # what a fault noted at inject for its evidence and heal (e.g. the node it killed)

    def event(self, what: str, **kw: Any) -> None:
        self.timeline.append({"t": round(time.monotonic() - self.t0, 4), "source": "runner", "what": what, **kw})

    def wait(self, seconds: float) -> None:
        """An inherent wait (fault hold): counted apart from harness overhead."""
        if seconds > 0:
            with self.waiting():
                time.sleep(seconds)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Time in this block is inherent: spent waiting on the client, the server or a fault
        (a trigger, the flow's end, evidence probes, a gc in the agent), not harness overhead."""
        t = time.monotonic()
        try:
            yield
        finally:
            self.inherent += time.monotonic() - t

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """One named step of the scenario: its start, end and inherent share go on the record
        (chaostoolkit's journal of steps), whatever happens inside."""
        t, inherent = time.monotonic(), self.inherent
        try:
            yield
        finally:
            end = time.monotonic()
            self.phases.append({"name": name, "start": round(t - self.t0, 4), "end": round(end - self.t0, 4),
                                "inherent": round(self.inherent - inherent, 4),
                                "overhead": round(end - t - (self.inherent - inherent), 4)})

    # -- Sources: what check steps read -------------------------------------------------
    def add_inherent(self, seconds: float) -> None:
        self.inherent += max(seconds, 0.0)

    def snapshot(self) -> Snapshot:
        snap = self.agent.snapshot()
        if snap.busy:  # locks the client held while the agent read its state: evidence
            self.event("client lock held", locks=list(snap.busy))
        return snap

    def fds(self) -> dict[int, str]:
        return {int(k): v for k, v in self.agent.request("fds", timeout=5)["fds"].items()}

    def probe(self) -> dict[str, Any]:
        try:
            return self.agent.request("probe", timeout=3, subject=self.names.echo_subject, bound=1.0)
        except AgentError as e:
            raise ProbeFailed(e.summary) from None

    def consumers(self) -> dict[str, dict[str, Any]]:
        return self.observer.consumers(self.object_stream)

    def connection(self, cid: int) -> dict[str, Any] | None:
        return self.observer.connection(cid)

    def stream(self) -> dict[str, Any] | None:
        return self.observer.stream(self.object_stream)

    def jsz_messages(self) -> int | None:
        return self.observer.jsz_stream_messages(self.object_stream)

    def copies(self) -> dict[str, dict[str, Any] | None] | None:
        """Each node's own copy of the flow's stream (None on one server)."""
        return clusterview.copies(self.env, self.object_stream) if self.on_cluster else None

    def heartbeat_gaps(self) -> list[dict[str, Any]]:
        from harness.checks.loop import AGENT, whose_gap

        gaps = self.agent.finish_watch()
        for g in gaps:  # on the timeline: the gaps a busy machine made or may have made, and why
            whose = whose_gap(g)
            if whose != AGENT:
                self.event(f"heartbeat gap: {whose}", duration=g["duration"], queued=g["queued"], cpu_busy=g["cpu_busy"])
        return gaps

    def settled(self, probe: Callable[[], list[Finding]], grace: float | None = None) -> list[Finding]:
        """`settle` within the leak grace; time spent waiting on a leaky case is inherent."""
        t = time.monotonic()
        out = settle(probe, t + (self.settings.leak_grace if grace is None else grace))
        if out:  # only a leaky case waits out its grace
            self.inherent += time.monotonic() - t
        return out

    def stacks(self) -> str:
        """Every non-agent task's await chain, and the agent's task running a client action (a drain
        or close fault: its chain into the client is the evidence), ('(no snapshot: ...)' if the
        agent cannot answer)."""
        try:
            snap = self.snapshot()
        except AgentError as e:
            return f"(no snapshot: {e.summary})"
        lines = [f"(held: {b})" for b in snap.busy]
        for t in snap.tasks:
            acting = t.role == "agent" and any(" in op_action" in frame for frame in t.stack)
            if (t.role != "agent" or acting) and t.state != "done":
                lines.append(f"task {t.coro} ({t.state}):\n  " + "\n  ".join(t.stack))
        return "\n".join(lines)

    def end(self, **kw: Any) -> None:
        """Record what the runner saw as the flow ended (the iterators check judges it)."""
        self.flow_end = dataclasses.replace(self.flow_end, **kw)

    def received(self) -> bool:
        return self.agent.find_event(lambda e: e.get("ev") == "received") is not None

    def event_since_inject(self, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return self.agent.find_event(lambda e: e.get("at", 0) >= self.injected_at and pred(e))

    def events_since_inject(self, pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for e in list(self.agent.events) if e.get("at", 0) >= self.injected_at and pred(e)]

    def client_action(self, name: str, **params: Any) -> None:
        """Issue a client-side action (a drain, a cancel) in the agent without waiting: under a
        composite fault it runs while the link is still stalled. Its result is collected after heal."""

        def run() -> None:
            try:
                r = self.agent.request("action", timeout=ACTION_LIMIT, name=name, **params)
                self.action_result = {"name": name, **{k: v for k, v in r.items() if k not in ("re", "ok")}}
            except AgentError as e:
                self.action_result = {"name": name, "error": e.summary.split(": ", 1)[-1]}
            except Exception as e:  # recorded, never raised in a thread nobody joins for its result
                self.action_result = {"name": name, "error": f"{type(e).__name__}: {e}"}
            self.event("action returned", **self.action_result)

        self.action_name = name
        self.action_thread = threading.Thread(target=run, name=f"action-{name}", daemon=True)
        self.action_thread.start()
        self.event("action issued", name=name)
        # A plain drain answers in milliseconds: wait a moment so its evidence is its result.
        with self.waiting():
            self.action_thread.join(0.5)


class Runner:
    def __init__(
        self, env: Environment, run_seed: int, settings: Settings = Settings(), flow_modules: tuple[str, ...] = (),
        agent_command: AgentCommand | None = None,
    ) -> None:
        self.env = env
        self.run_seed = run_seed
        self.settings = settings
        self.pool = AgentPool(agent_command, flow_modules)
        self.observer = Observer(env)
        self.observer.connect()
        self._n = 0

    def close(self) -> None:
        self.pool.close()
        self.observer.close()

    # -- one scenario ------------------------------------------------------------------
    def run(self, sc: Scenario, replay: str = "") -> Record:
        seed = sc.seed(self.run_seed)
        rng = random.Random(seed)
        self._n += 1
        names = Names(tag=f"{self._n:03d}{rng.getrandbits(24):06x}")
        spec = FLOWS[sc.flow]
        rc = RunContext(self.env, self.observer, sc, spec, names, self.settings)
        findings: list[Finding] = []
        verdict, reason = "passed", ""
        try:
            findings, inconclusive = self._run(rc)
            out = rc.outcome or {}
            if out.get("status") == "not_applicable":
                raise NotApplicable(out.get("message", "the flow says this client release cannot run it"))
            # Only the checks the scenario selected decide its verdict; the rest stay visible.
            for f in findings:
                if f.check not in sc.checks:
                    rc.event("finding of an unselected check", check=f.check, summary=f.summary)
            findings = [f for f in findings if f.check in sc.checks]
            out = rc.outcome or {}
            if sc.is_control and not inconclusive and out.get("status") == "error":
                # Without a fault the flow must complete: a control that raised is no baseline.
                inconclusive = f"the no-fault control's flow raised {out.get('exc_type')}: {out.get('message', '')}".rstrip(": ")
            if findings:
                verdict, reason = "failed", f"{len(findings)} finding(s)"
            elif inconclusive:
                verdict, reason = "inconclusive", inconclusive
        except NotApplicable as e:
            verdict, reason, findings = "not_applicable", str(e), []
            rc.event("not applicable", reason=str(e))
        except HarnessError as e:
            verdict, reason = "error", str(e).splitlines()[0]
            rc.event("error", error=str(e)[-3000:])
        except Exception as e:  # a harness bug: recorded, not raised, so the run goes on
            verdict, reason = "error", f"{type(e).__name__}: {e}"
            rc.event("error", error=reason)
        finally:
            # Once the flow ended and the client closed, nothing in the agent uses the scenario's
            # streams: the observer removes them while the agent exits (its interpreter's
            # shutdown takes ~60 ms). Otherwise (an error mid-flow) the agent goes first.
            cleaning = self.observer.start_cleanup(spec, names) if rc.outcome is not None and rc.client_closed else None
            if rc.agent is not None:
                rc.agent.exit()
            if rc.action_thread is not None:
                rc.action_thread.join(5)  # its agent is gone: it ends at once
            self.pool.refill()  # if the scenario ended before its flow started
            self.observer.end_cleanup(cleaning or self.observer.start_cleanup(spec, names))
        wall = time.monotonic() - rc.t0
        events = list(rc.timeline)
        if rc.agent is not None:
            for e in rc.agent.events:
                if e.get("ev") in ("hello", "exit"):
                    continue
                extra = {k: v for k, v in e.items() if k not in ("ev", "at", "t")}
                events.append({"t": round(e["at"] - rc.t0, 4), "source": "agent", "what": e["ev"], **extra})
        events.sort(key=lambda e: e["t"])
        return Record(
            id=sc.id, flow=sc.flow, fault=sc.fault, trigger=sc.trigger, seed=seed, verdict=verdict, reason=reason,
            findings=tuple(findings), events=tuple(events),
            timings={"wall": round(wall, 4), "inherent": round(rc.inherent, 4), "overhead": round(wall - rc.inherent, 4)},
            replay=replay if verdict not in ("passed", "not_applicable") else "",
            series={"memory": MemorySeries.from_samples(rc.samples).to_json()} if rc.samples else {},
            phases=tuple(rc.phases),
        )

    def _run(self, rc: RunContext) -> tuple[list[Finding], str]:
        """The scenario's named steps, each timed on the record (`Record.phases`)."""
        sc = rc.scenario
        if sc.client:
            rc.event("client options", **sc.client)
        fault = faults.resolve(sc.fault)
        trig = triggers.TRIGGERS.get(sc.trigger) if fault else None
        with rc.phase("prepare"):
            self._prepare(rc, fault)
        with rc.phase("flow"):
            inconclusive, terminal_at, deadline, mark = self._flow(rc, fault, trig)
        with rc.phase("end"):
            answering = self._await_end(rc, terminal_at, deadline, mark)
        if not answering:
            # The loop itself is blocked: nothing more can be asked of this agent; only the
            # steps that read the runner's own records run.
            with rc.phase("checks"):
                return self._checks(rc, AFTER_FLOW, agent_answers=False) + self._checks(rc, AFTER_CLOSE, agent_answers=False), inconclusive
        with rc.phase("checks after the flow"):
            findings = self._checks(rc, AFTER_FLOW)  # the connection still open
        with rc.phase("close"):
            self._close(rc)
        with rc.phase("checks after close"):  # nothing of the client may remain
            findings += self._checks(rc, AFTER_CLOSE)
        clusterview.cluster_state_event(rc)  # each node's copy at the end, for the report
        return findings, inconclusive

    def _prepare(self, rc: RunContext, fault: Any) -> None:
        """Isolated names and what the flow needs, an agent (or: not applicable), baselines, connect."""
        sc, env, obs = rc.scenario, self.env, self.observer
        needs = checks.needed(sc.checks)
        env.reset_proxy()
        # The observer's prepare (server calls: on a cluster, ~0.15 s of the servers electing
        # the new stream's and consumer's leaders) runs while the agent starts and connects:
        # neither needs the other, and the flow starts only once both are done.
        preparing = obs.start_prepare(rc.spec, rc.names, dict(sc.params))
        try:
            rc.agent = agent = self.pool.get(refill=False)  # the next spare: once the servers are done
            why = not_applicable(agent.hello or {}, rc.spec, sc.trigger if fault is not None else "")
            if why:
                raise NotApplicable(why)
            agent.start_watch()
            fds_before = rc.fds() if "fds" in needs else {}
            # After close nothing of the client may remain, not even what connect started: that
            # phase's baseline is taken before connect; the after-the-flow baseline after it.
            pre_connect_tasks = frozenset(t.id for t in agent.snapshot().tasks)
            agent.request("connect", timeout=10, options={**env.connect_options(), **CLIENT_OPTIONS, **sc.client})
            base = agent.snapshot()
        except BaseException:
            # The scenario's cleanup must find whatever the prepare made: it ends first.
            with contextlib.suppress(Exception):
                obs.result(preparing, obs.PREPARE_LIMIT)
            raise
        took = obs.result(preparing, obs.PREPARE_LIMIT)
        # The next scenario's agent boots now, beside this one's flow, not during the servers'
        # prepare: its ~0.2 s of CPU slowed a cluster's leader elections by a third on 2 cores.
        # (Not after the flow's start: the spawn would hide a short flow's run in overhead.)
        self.pool.refill()
        base_consumers = frozenset(obs.consumers(rc.object_stream))
        # `servers`: the flow's prepare, i.e. the servers answering its creates and publishes
        # (on a cluster mostly the new stream's and consumer's leader elections)
        rc.event("prepared", names=rc.names.tag, servers=round(took, 4))
        rc.cid = base.conn.cid
        rc.baseline = Baseline(pre_connect_tasks=pre_connect_tasks, tasks=frozenset(t.id for t in base.tasks),
                               sids=frozenset(s.sid for s in base.subs), consumers=base_consumers, fds=fds_before)

    def _flow(self, rc: RunContext, fault: Any, trig: triggers.Trigger | None) -> tuple[str, float | None, float, int]:
        """Start the flow (a soak's rounds first); wait for the trigger, inject, hold, heal.

        Returns why the scenario is inconclusive, the terminal event's time, the flow's
        deadline and the event index its outcome is waited for from.
        """
        sc, st, env, agent = rc.scenario, self.settings, self.env, rc.agent
        if trig is not None and trig.arm is not None:
            trig.arm(rc)
        paced = trig is not None and trig.paced
        if paced:
            pacing = trig.pacing or {"type": "bandwidth", "rate": st.pacing_kbps}
            env.toxiproxy.add_toxic(env.proxy_name, pacing["type"], name=triggers.PACING,
                                    **{k: v for k, v in pacing.items() if k != "type"})
        try:
            def start() -> None:
                # The flow gives up by itself a little before the runner would call it stuck.
                agent.request("start", flow=sc.flow, params=dict(sc.params), tag=rc.names.tag,
                              barrier=trig.barrier if trig else "", deadline=flow_deadline(sc.timeout))

            mark, start_last = self._soak(rc, start) if sc.is_soak else (0, True)
            if start_last:
                start()
            deadline = time.monotonic() + sc.timeout if start_last else time.monotonic()
            rc.event("flow started")
            inconclusive, terminal_at = "", None
            if fault is not None and trig is not None:
                inconclusive, terminal_at = self._inject_and_heal(rc, fault, trig, deadline)
        finally:
            # The link is paced only while the trigger waits: never into the checks, whatever failed.
            if paced:
                self._remove_toxic_if_present(triggers.PACING)
        return inconclusive, terminal_at, deadline, mark

    def _await_end(self, rc: RunContext, terminal_at: float | None, deadline: float, mark: int) -> bool:
        """The flow's own terminal action, then wait for its outcome up to the stuck bound (or its
        deadline); record what is still pending and a client action that did not return.

        Returns False when the agent stopped answering (its loop is blocked).
        """
        sc, st, agent = rc.scenario, self.settings, rc.agent
        with rc.waiting():
            # The flow's own terminal event once it has everything (e.g. unsubscribe for an iterator).
            # (Judged while the fault held: the terminal event is past, no finish hook is waited for.)
            if not rc.held_judged and self._wait_blocked_after_received(rc, deadline):
                finish_at = time.monotonic()
                try:
                    r = agent.request("finish", timeout=st.stuck_after)
                    if r.get("hooks"):
                        rc.event("finish: flow's terminal action run", errors=r.get("hook_errors"))
                        terminal_at = terminal_at or finish_at
                except AgentError as e:
                    if not agent.alive() or agent.loop_blocked() or "did not answer" not in e.summary:
                        raise
                    # The client hangs inside the flow's own terminal action (e.g. unsubscribe):
                    # the client's doing, held to the same bound as any pending call.
                    rc.end(hung_finish=e.summary)
                    terminal_at = terminal_at or finish_at
                    rc.event("finish: flow's terminal action did not return", error=e.summary)
            own = agent.find_event(lambda e: e.get("ev") == "terminal")  # the flow's own (e.g. a worker's shutdown)
            if own is not None and terminal_at is None:
                terminal_at = own["at"]
                rc.event("the flow's own terminal event", label=own.get("label"))
            limit = deadline if terminal_at is None else min(deadline, terminal_at + st.stuck_after)
            if terminal_at is not None:  # on the timeline at the moment it happened (the report draws it)
                rc.timeline.append({"t": round(terminal_at - rc.t0, 4), "source": "runner", "what": "terminal event"})
            judged = rc.held_judged
            if judged:  # the heal ends the fault: what is still pending `stuck_after` later is judged again
                limit = min(deadline, time.monotonic() + st.stuck_after)
            outcome = agent.wait_event(lambda e: e.get("ev") == "outcome", max(limit - time.monotonic(), 0), start=mark)
        rc.outcome = outcome
        if sc.is_soak and outcome is not None and outcome.get("status") == "ok":
            rc.samples.append(self._sample(rc))  # after the last round
        if outcome is None:
            try:
                if agent.loop_blocked():
                    raise AgentError("agent did not answer: its event loop is blocked (no heartbeat)")
                if not judged:
                    self._stuck(rc, terminal_at)
                else:  # judged while the fault held; still pending with the fault gone is a second symptom
                    snap = rc.snapshot()
                    if snap.pending:
                        with rc.waiting():  # cpu_busy measures over 0.3 s
                            busy = agent.cpu_busy()
                        rc.end(after_heal=snap, after_heal_cpu_busy=busy, after_heal_stacks=rc.stacks())
                agent.request("cancel_flow", timeout=5)
            except AgentError as e:
                if not agent.alive() or "did not answer" not in e.summary:
                    raise
                rc.event("agent unresponsive", error=e.summary)
                rc.end(unresponsive=e.summary)
                return False
        if rc.flow_end.hung_finish:
            rc.end(hung_finish_stacks=rc.stacks())
        if rc.action_thread is not None and not judged:
            # The drain itself must end once the fault is healed, like any pending call.
            with rc.waiting():  # the stuck bound the drain is held to
                rc.action_thread.join(max((terminal_at or time.monotonic()) + st.stuck_after - time.monotonic(), 0))
            if rc.action_thread.is_alive():
                rc.end(unfinished_action=rc.action_name, action_stacks=rc.stacks())
        return True

    def _close(self, rc: RunContext) -> None:
        """Close the client's connection (the after-close checks then look for what is left)."""
        self._note_cid(rc)
        try:
            rc.agent.request("close", timeout=6)
            rc.client_closed = True
            rc.event("client closed")
        except AgentError as e:
            rc.end(close_error=e.summary, close_stacks=rc.stacks())

    def _soak(self, rc: RunContext, start: Callable[[], None]) -> tuple[int, bool]:
        """A soak: every round but the last started, awaited and sampled (the last is the
        scenario's flow as usual). Returns the event index the last round's outcome is waited
        for from, and whether to start it (not if a round did not end well: that round is then
        judged like any flow that ended so, or did not end)."""
        sc, st, agent = rc.scenario, self.settings, rc.agent
        self._sample(rc, start_tracing=True)  # tracemalloc from here: it traces what the rounds allocate
        end = time.monotonic() + st.soak_seconds if st.soak_seconds > 0 else None
        done = 0
        t0 = time.monotonic()
        while True:
            if end is None and done + 1 >= sc.rounds:
                break
            if end is not None and (time.monotonic() >= end and done + 1 >= MIN_SOAK_ROUNDS or done + 1 >= MAX_ROUNDS):
                break
            mark = len(agent.events)
            start()
            with rc.waiting():
                ev = agent.wait_event(lambda e: e.get("ev") == "outcome", sc.timeout, start=mark)
            if ev is None or ev.get("status") != "ok":
                rc.event("soak stopped", round=done + 1, status=(ev or {}).get("status", "no outcome"))
                return mark, False
            done += 1
            rc.samples.append(self._sample(rc))
            if done > 1:  # the series sums the rounds up: keep round 1's events, not every round's
                agent.forget_events(mark, ("outcome", "received", "checkpoint", "terminal"))
        rc.event("soak rounds", rounds=done + 1, seconds=round(time.monotonic() - t0, 2))
        return len(agent.events), True

    def _sample(self, rc: RunContext, start_tracing: bool = False) -> dict[str, Any]:
        """One round's memory sample: the agent's (managed memory, tasks or goroutines, subscriptions, RSS)
        and the server's (its memory, the flow's consumers' ack-pending and redelivered)."""
        with rc.waiting():  # a full gc.collect() in the agent is the measurement, not overhead
            agent_side = rc.agent.request("memory", timeout=10, start_tracing=start_tracing)
            cons = rc.consumers().values()
            # Whatever figures the agent's runtime has (nats-py: traced, objects, tasks; nats.go:
            # heap, heap_objects, goroutines; both: subs, rss): the check's bounds name each.
            out = {k: v for k, v in agent_side.items()
                   if k not in ("re", "ok") and isinstance(v, (int, float)) and not isinstance(v, bool)}
            out.update(server_mem=self.observer.varz().get("mem", 0),
                       ack_pending=sum(c["num_ack_pending"] for c in cons), redelivered=sum(c["num_redelivered"] for c in cons))
        return out

    def _checks(self, rc: RunContext, phase: str, agent_answers: bool = True) -> list[Finding]:
        """Run the selected checks' steps for `phase`, in registration order."""
        out: list[Finding] = []
        for s in checks.steps(phase, rc.scenario.checks, agent_answers):
            out += s.run(rc)
        return out

    def _note_cid(self, rc: RunContext) -> None:
        """The server's id of the client's live connection just before close (None if already closed)."""
        try:
            cid = rc.snapshot().conn.cid
        except AgentError:
            cid = None
        if cid is not None:
            rc.cid = cid
        elif rc.agent.find_event(lambda e: e.get("ev") == "conn" and e.get("state") == "reconnected"):
            rc.cid = None  # the baseline's connection was replaced; which one is live is unknown
        rc.event("connection before close", cid=rc.cid)

    def _inject_and_heal(self, rc: RunContext, fault: Any, trig: triggers.Trigger, deadline: float) -> tuple[str, float | None]:
        """Wait for the trigger, inject, hold, collect evidence, heal (always, in `finally`).

        Returns why the scenario is inconclusive ("" if it is not) and the terminal event's time.
        """
        sc, env, agent = rc.scenario, self.env, rc.agent
        inconclusive, terminal_at = "", None
        with rc.waiting():
            fired = self._wait_trigger(rc, trig, deadline)
        if not fired:
            rc.event("trigger missed")
            return f"trigger '{sc.trigger}' never fired (flow ended or deadline passed first)", None
        rc.event("trigger fired", trigger=sc.trigger)
        cluster_leader_event(rc, "before the fault")
        try:
            rc.injected_at = time.monotonic()
            rc.server_was_running_at_inject = env.server_running()
            # A composite's parts go in one by one, `stagger` seconds apart; a barrier's flow
            # is released after the first, so it runs under that part before the next.
            stagger = float(sc.fault_params.get("stagger", 0.0))
            for i, part in enumerate(fault.parts or (fault,)):
                if i and stagger:
                    rc.wait(stagger)
                part.inject(rc)
                if i == 0:
                    rc.server_was_running_at_inject = env.server_running()
                    if trig.barrier:
                        agent.request("release")
            rc.event("fault injected", fault=sc.fault)
            if fault.terminal == faults.AT_INJECT:
                terminal_at = time.monotonic()
            hold_end = rc.injected_at + stagger * max(len(fault.parts) - 1, 0) + sc.hold
            if terminal_at is not None and terminal_at + self.settings.stuck_after < hold_end:
                # The fault outlasts the stuck bound: what the terminal event left pending is
                # judged now, while the fault still holds (a close must return, stall or not).
                rc.wait(terminal_at + self.settings.stuck_after - time.monotonic())
                self._stuck_while_held(rc)
            rc.wait(hold_end - time.monotonic())
            with rc.waiting():  # evidence probes wait on purpose (e.g. an unanswered handshake)
                ok, text = fault.evidence(rc)
            rc.event("evidence", ok=ok, text=text)
            if not ok:
                inconclusive = f"no evidence the fault took effect: {text}"
        finally:
            fault.heal(rc)  # the pacing toxic, if any, goes in the caller's `finally`
            rc.event("fault healed")
            cluster_leader_event(rc, "after heal")
            if fault.terminal == faults.AT_HEAL:
                # A drain under another fault (e.g. a stall) can only finish once healed.
                terminal_at = time.monotonic()
        return inconclusive, terminal_at

    def _stuck_while_held(self, rc: RunContext) -> None:
        """Record pending calls and a client action not returned `stuck_after` past the
        terminal event, while the fault still holds (their stacks as they wait are the
        evidence); the iterators check judges them, and nothing is judged again after heal."""
        if rc.agent.find_event(lambda e: e.get("ev") == "outcome") is None:
            self._stuck(rc, rc.injected_at)
        if rc.action_thread is not None and rc.action_thread.is_alive():
            rc.end(unfinished_action=rc.action_name, action_stacks=rc.stacks())
        rc.held_judged = True
        rc.event("judged while the fault holds", stuck=rc.flow_end.stuck is not None, action=rc.flow_end.unfinished_action)

    def _remove_toxic_if_present(self, name: str) -> None:
        tp, proxy = self.env.toxiproxy, self.env.proxy_name
        if any(t.name == name for t in tp.toxics(proxy)):
            tp.remove_toxic(proxy, name)

    # -- helpers ------------------------------------------------------------------------
    def _wait_trigger(self, rc: RunContext, trig: triggers.Trigger, deadline: float) -> bool:
        agent = rc.agent
        if trig.barrier:
            ev = agent.wait_event(
                lambda e: (e.get("ev") == "checkpoint" and e.get("name") == trig.barrier) or e.get("ev") == "outcome",
                max(deadline - time.monotonic(), 0),
            )
            return bool(ev and ev.get("ev") == "checkpoint")
        delay = 0.005
        while time.monotonic() < deadline:
            if agent.find_event(lambda e: e.get("ev") == "outcome"):
                return False
            if trig.fired and trig.fired(rc):
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return False

    def _wait_blocked_after_received(self, rc: RunContext, deadline: float) -> bool:
        """Wait until the flow has every message and sits in a tracked call (True), or has ended."""
        agent = rc.agent
        delay = 0.005
        while time.monotonic() < deadline:
            if agent.find_event(lambda e: e.get("ev") == "outcome") or not agent.alive():
                return False
            if rc.received() and not agent.loop_blocked():
                if any(p.age >= 0.05 for p in agent.pending()):
                    return True
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return False

    def _stuck(self, rc: RunContext, terminal_at: float | None) -> None:
        """The flow is still pending at its bound: record the evidence for the iterators check."""
        snap = rc.snapshot()
        with rc.waiting():  # cpu_busy measures the agent over 0.3 s
            busy = rc.agent.cpu_busy()
        after = "the terminal event" if terminal_at else "the flow's deadline"
        rc.end(stuck=snap, stuck_cpu_busy=busy, stuck_after=after, stuck_stacks=rc.stacks())
        rc.event("stuck", pending=[p.label for p in snap.pending], cpu_busy=busy)
