"""Values built by hand for the checks' unit tests: snapshots, tasks, and a fake `Sources`.

The checks are tested the way goleak tests its filters: on values made in the test, no
agent, no server. `FakeSources` answers each read from a list of prepared values (the
last one repeats), so a test can say "leaky at first, clean a moment later".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from harness.agent.snapshot import ConnState, PendingCall, ProcInfo, Snapshot, SubInfo, TaskInfo
from harness.checks import Baseline, Finding, ProbeFailed, settle
from harness.checks.iterators import FlowEnd

OPEN = ConnState(connected=True, closed=False, reconnecting=False, cid=7)
CLOSED = ConnState(connected=False, closed=True, reconnecting=False, cid=None)


def task(id: int, coro: str, state: str = "pending", role: str = "", subject: str = "") -> TaskInfo:
    return TaskInfo(id=id, name=f"Task-{id}", coro=coro, module="m.py", state=state, role=role,
                    stack=(f"m.py:1 in {coro}",), created_at=("flow.py:10 in run",), subject=subject)


def snap(tasks: tuple[TaskInfo, ...] = (), subs: tuple[SubInfo, ...] = (), pending: tuple[PendingCall, ...] = (),
         conn: ConnState = OPEN) -> Snapshot:
    return Snapshot(tasks=tasks, subs=subs, pending=pending, proc=ProcInfo(pid=1, rss=1, fds=3, cpu=0.0, threads=1),
                    conn=conn, flow_done=True)


def consumer(name: str, push_bound: bool = False, num_waiting: int = 0, inactive_threshold: float | None = 5.0,
             num_ack_pending: int = 0) -> dict[str, Any]:
    return {"name": name, "durable": False, "push": push_bound, "push_bound": push_bound, "num_waiting": num_waiting,
            "num_ack_pending": num_ack_pending, "num_pending": 0, "inactive_threshold": inactive_threshold,
            "delivered_stream_seq": 0, "created": "t"}


class Series:
    """Answers in turn from `values`; the last one repeats."""

    def __init__(self, *values: Any) -> None:
        self.values, self.calls = list(values), 0

    def __call__(self, *a: Any) -> Any:
        v = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        if isinstance(v, BaseException):
            raise v
        return v


@dataclasses.dataclass
class FakeSources:
    """A `Sources` made of values: what the runner's RunContext would have read."""

    baseline: Baseline = dataclasses.field(default_factory=Baseline)
    outcome: dict[str, Any] | None = None
    flow_end: FlowEnd = dataclasses.field(default_factory=FlowEnd)
    faulted: bool = True
    client_open: bool = True
    cid: int | None = None
    consumer_name: str = "c_x"
    samples: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    leak_grace: float = 0.2
    recovery_bound: float = 0.3
    consumer_wait: float = 7.0
    interest_bound: float = 5.0
    on_cluster: bool = False
    snapshots: Callable[[], Snapshot] = dataclasses.field(default_factory=lambda: Series(snap()))
    fd_reads: Callable[[], dict[int, str]] = dataclasses.field(default_factory=lambda: Series({}))
    probes: Callable[[], dict[str, Any]] = dataclasses.field(default_factory=lambda: Series({"rtt": 0.001}))
    consumer_reads: Callable[[], dict[str, dict[str, Any]]] = dataclasses.field(default_factory=lambda: Series({}))
    connz: Callable[[int], dict[str, Any] | None] = dataclasses.field(default_factory=lambda: Series(None))
    streams: Callable[[], dict[str, Any] | None] = dataclasses.field(default_factory=lambda: Series(None))
    copy_reads: Callable[[], Any] = dataclasses.field(default_factory=lambda: Series(None))  # None: one server
    gaps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    inherent: float = 0.0

    def snapshot(self) -> Snapshot:
        return self.snapshots()

    def fds(self) -> dict[int, str]:
        return self.fd_reads()

    def probe(self) -> dict[str, Any]:
        return self.probes()

    def consumers(self) -> dict[str, dict[str, Any]]:
        return self.consumer_reads()

    def connection(self, cid: int) -> dict[str, Any] | None:
        return self.connz(cid)

    def stream(self) -> dict[str, Any] | None:
        return self.streams()

    def jsz_messages(self) -> Any:
        s = self.streams()
        return s["messages"] if s else None

    def copies(self) -> Any:
        return self.copy_reads()

    def heartbeat_gaps(self) -> list[dict[str, Any]]:
        return self.gaps

    def settled(self, probe: Callable[[], list[Finding]], grace: float | None = None) -> list[Finding]:
        import time

        return settle(probe, time.monotonic() + (self.leak_grace if grace is None else grace))

    def wait(self, seconds: float) -> None:
        self.inherent += seconds

    def add_inherent(self, seconds: float) -> None:
        self.inherent += seconds

    def event(self, what: str, **kw: Any) -> None:
        self.events.append((what, kw))


def run_step(check: str, phase: str, s: FakeSources) -> list[Finding]:
    """Run check `check`'s step for `phase` as the runner would."""
    from harness.checks import CHECKS

    (st,) = [x for x in CHECKS[check].steps if x.phase == phase]
    return st.run(s)


__all__ = ["ProbeFailed"]
