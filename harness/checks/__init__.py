"""Checks: each finds residue and returns findings (values); the runner decides the verdict.

A check is one module here that registers its steps with `@step(name, phase, needs)`.
A step reads what it needs through `Sources` (the scenario's run context, or a fake
built by hand in a unit test) and returns `list[Finding]`; the runner runs the steps of
the scenario's selected checks phase by phase, in registration order, and nothing else.
Adding a check is adding a module (and its name to `MODULES`).

The pure core of each check stays a `find_*(...) -> list[Finding]` function on values:
snapshot, filter, retry with capped backoff (`Sources.settled`) until clean or a deadline —
a clean case returns at once, only a leaky one waits out its grace.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from typing import Any, Callable, Mapping, Protocol


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing a healthy client would not have left: one line, then its evidence."""

    check: str
    summary: str
    evidence: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def settle(probe: Callable[[], list[Finding]], deadline: float, first: float = 0.01, cap: float = 0.25) -> list[Finding]:
    """Run `probe` until it finds nothing or `deadline` (monotonic) passes; return the last findings."""
    delay = first
    while True:
        found = probe()
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
        delay = min(delay * 2, cap)


# -- phases and needs ------------------------------------------------------------------

AFTER_FLOW = "after the flow"  # the flow ended (or was cut off); the client connection is still open
AFTER_CLOSE = "after close"  # nc.close() returned (or failed): nothing of the client may remain
PHASES = (AFTER_FLOW, AFTER_CLOSE)

# What a step may read. The runner gathers only what a selected check needs (e.g. the fds
# baseline costs a request before connect), and with an unresponsive agent runs only the
# steps that read its own records: asking the agent anything more would only time out.
NEEDS = {
    "snapshot": "the agent's snapshot: tasks, subscriptions, pending calls, connection state",
    "fds": "the agent's open file descriptors (a baseline is taken before connect)",
    "probe": "requests through the client under test (round trip, JetStream API)",
    "observer": "the server's view through the observer connection and the monitoring endpoints",
    "outcome": "the flow's outcome event (status, result, delivery ledger)",
    "heartbeats": "the runner's record of the agent's heartbeats (gaps, stack dumps)",
    "flow_end": "the runner's record of how the flow ended (stuck calls, hung actions, close)",
    "samples": "a soak's per-round memory samples (agent: traced, objects, tasks, subs, RSS; server: memory, consumers)",
    "cluster": "on a cluster, every node's own copy of the flow's stream and its consumers (`/jsz` per node)",
}
AGENT_NEEDS = frozenset({"snapshot", "fds", "probe"})
RUNNER_RECORDS = frozenset({"outcome", "heartbeats", "flow_end", "samples"})


@dataclasses.dataclass(frozen=True)
class Baseline:
    """What was there before the flow: a leak is what is there now and was not then."""

    pre_connect_tasks: frozenset[int] = frozenset()  # after close even connect's tasks must be gone
    tasks: frozenset[int] = frozenset()  # after connect, before the flow
    sids: frozenset[int] = frozenset()
    consumers: frozenset[str] = frozenset()  # the observer's prepared durables
    fds: Mapping[int, str] = dataclasses.field(default_factory=dict)  # before connect; only if a check needs "fds"


class Sources(Protocol):
    """What a check step reads. The runner's `RunContext` provides it; unit tests fake it."""

    baseline: Baseline
    outcome: dict[str, Any] | None
    flow_end: Any  # harness.checks.iterators.FlowEnd
    faulted: bool  # a fault was injected (not the no-fault control)
    client_open: bool  # the fault leaves the client's connection open (no close/nc.drain)
    cid: int | None  # the server's id of the client's connection, noted just before close
    consumer_name: str  # the observer's durable for the flow (if the flow uses one)
    samples: list[dict[str, Any]]  # a soak's per-round memory samples (empty for other scenarios)
    leak_grace: float
    recovery_bound: float
    consumer_wait: float
    interest_bound: float
    on_cluster: bool  # the scenario runs on a cluster: copies() answers (a cheap test, no read)

    def snapshot(self) -> Any: ...  # harness.agent.snapshot.Snapshot
    def fds(self) -> dict[int, str]: ...
    def probe(self) -> dict[str, Any]: ...  # one round trip + JetStream call; raises ProbeFailed
    def consumers(self) -> dict[str, dict[str, Any]]: ...  # the flow's stream's consumer infos
    def connection(self, cid: int) -> dict[str, Any] | None: ...  # `/connz` record
    def stream(self) -> dict[str, Any] | None: ...  # the flow's stream: retention and state
    def jsz_messages(self) -> int | None: ...  # its message count as `/jsz` reports it
    def copies(self) -> dict[str, dict[str, Any] | None] | None: ...  # each node's copy of the stream (None: one server)
    def heartbeat_gaps(self) -> list[dict[str, Any]]: ...
    def settled(self, probe: Callable[[], list[Finding]], grace: float | None = None) -> list[Finding]: ...
    def wait(self, seconds: float) -> None: ...  # an inherent wait (not harness overhead)
    def add_inherent(self, seconds: float) -> None: ...  # time already spent waiting on the client or server
    def event(self, what: str, **kw: Any) -> None: ...  # a timeline event


class ProbeFailed(Exception):
    """The client did not answer a probe; the message is the one-line reason."""


# -- the registry --------------------------------------------------------------------------

StepFn = Callable[[Sources], "list[Finding]"]


@dataclasses.dataclass(frozen=True)
class Step:
    """One phase of one check: what it reads and the function that judges it."""

    check: str
    phase: str
    needs: frozenset[str]
    run: StepFn
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class Check:
    """A named check (selected by scenarios' `checks:`), and its steps in phase order."""

    name: str
    doc: str
    steps: tuple[Step, ...] = ()

    @property
    def needs(self) -> frozenset[str]:
        return frozenset().union(*(s.needs for s in self.steps)) if self.steps else frozenset()


CHECKS: dict[str, Check] = {}


def check(name: str, doc: str) -> None:
    """Declare the check `name` with its one-line description (shown by `harness list --catalogue`)."""
    if name in CHECKS and CHECKS[name].doc != doc:
        raise ValueError(f"check {name!r} declared twice")
    CHECKS.setdefault(name, Check(name, doc))


def step(name: str, phase: str, needs: tuple[str, ...] | frozenset[str]) -> Callable[[StepFn], StepFn]:
    """Register the decorated function as check `name`'s step for `phase`, reading `needs`."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r} (one of {', '.join(PHASES)})")
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)} (known: {', '.join(NEEDS)})")

    def deco(fn: StepFn) -> StepFn:
        if name not in CHECKS:
            raise ValueError(f"check {name!r} must be declared with check() before its steps")
        c = CHECKS[name]
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        CHECKS[name] = dataclasses.replace(c, steps=(*c.steps, Step(name, phase, frozenset(needs), fn, doc)))
        return fn

    return deco


def steps(phase: str, selected: tuple[str, ...] | set[str] | frozenset[str], agent_answers: bool = True) -> list[Step]:
    """The steps to run for `phase`, in registration order: every step of the `selected`
    checks, and the steps of other checks that read only the runner's own records (they
    cost nothing; their findings stay visible on the timeline without deciding the verdict).

    With `agent_answers` False (its event loop is blocked), only steps that read the
    runner's own records: anything else would ask the hung agent or report its hang again.
    """
    out = []
    for c in CHECKS.values():
        for s in c.steps:
            if s.phase != phase:
                continue
            free = s.needs <= RUNNER_RECORDS
            if (c.name in selected or free) and (agent_answers or free):
                out.append(s)
    return out


def needed(selected: tuple[str, ...] | set[str] | frozenset[str]) -> frozenset[str]:
    """Everything the selected checks read (the runner gathers baselines only for these)."""
    return frozenset().union(*(CHECKS[n].needs for n in selected if n in CHECKS))


# Registration order is run order within a phase: the flow's end first, then the
# connection, then residue in the client, on the server, and the loop's record last.
MODULES = ("iterators", "recovery", "subscriptions", "tasks", "consumers", "messages", "delivery", "interest", "cluster", "memory",
           "resources", "loop")

for _m in MODULES:
    importlib.import_module(f"harness.checks.{_m}")
