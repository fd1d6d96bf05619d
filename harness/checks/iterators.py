"""Stuck iterators: a pending `__anext__`, `next_msg` or `fetch` (or a drain, or the flow's
terminal action) that does not resolve within a bound after the terminal event.

The runner decides *when* (the terminal event: a drain, unsubscribe, close, or the flow's
own deadline, plus `stuck_after`); this module says *what* is stuck, with the awaiting
stack and whether the agent's CPU was busy (a spin) or idle (a lost wake-up).
"""

from __future__ import annotations

import dataclasses

from harness.agent.snapshot import PendingCall, Snapshot
from harness.checks import AFTER_CLOSE, AFTER_FLOW, Finding, Sources, check, step

# CPU share of one core above which a stuck call (or a blocked loop) is a spin, not a wait.
# A hang in a blocking call burns ~0 %; a spin gets a whole core on an idle machine but only
# its share on a loaded one (measured: 48 % with three CPU hogs on this 2-core machine).
BUSY = 0.2


def is_spin(cpu_busy: float) -> bool:
    """Whether a wait that used this share of a core was a spin (the loop check uses it too)."""
    return cpu_busy >= BUSY


def stuck_kind(cpu_busy: float) -> str:
    return "spin (busy CPU)" if is_spin(cpu_busy) else "lost wake-up (idle CPU)"


def find_stuck_calls(snap: Snapshot, cpu_busy: float, after: str, fallback_stack: str = "") -> list[Finding]:
    """One finding per tracked call still pending in `snap`, with its task's await chain."""
    pending = snap.pending or (PendingCall("(no tracked call)", 0.0, 0),)
    by_id = {t.id: t for t in snap.tasks}
    out = []
    for p in pending:
        task = by_id.get(p.task)
        stack = "\n  ".join(task.stack) if task else fallback_stack
        out.append(
            Finding(
                "iterators",
                f"{p.label} still pending {p.age:.1f}s, not resolved after {after}: {stuck_kind(cpu_busy)}",
                evidence=f"cpu busy {cpu_busy:.0%}\nawaiting stack:\n  {stack}",
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class FlowEnd:
    """What the runner saw as the flow ended and as the client closed: the iterators check's evidence.

    The runner owns the timing (the terminal event, the stuck bound); it records what it
    saw here, with the stacks taken at that moment, and the check judges it.
    """

    stuck: Snapshot | None = None  # the snapshot taken when the flow was still pending at its bound
    stuck_cpu_busy: float = 0.0
    stuck_after: str = ""  # "the terminal event" | "the flow's deadline"
    stuck_stacks: str = ""  # every non-agent task's stack: evidence when a pending call has no task
    # Judged while the fault held (the terminal event's bound passed first): what was still
    # pending `bound` after the heal, once the fault itself was gone.
    after_heal: Snapshot | None = None
    after_heal_cpu_busy: float = 0.0
    after_heal_stacks: str = ""
    hung_finish: str = ""  # the flow's terminal action did not return: the agent's error
    hung_finish_stacks: str = ""
    unfinished_action: str = ""  # a drain that did not return: its name
    action_stacks: str = ""
    unresponsive: str = ""  # the agent stopped answering while the flow was pending
    close_error: str = ""  # nc.close() did not complete
    close_stacks: str = ""
    bound: float = 0.0  # the stuck bound the runner applied (stuck_after)


def find_hung_finish(end: FlowEnd) -> list[Finding]:
    """The flow's own terminal action (e.g. unsubscribe) did not return within the bound."""
    if not end.hung_finish:
        return []
    return [Finding("iterators", f"the flow's terminal action did not return within {end.bound:.1f}s",
                    evidence=f"{end.hung_finish}\n{end.hung_finish_stacks}")]


def find_unfinished_action(end: FlowEnd) -> list[Finding]:
    """A drain fault's call (sub.drain, nc.drain, ...) still running past the bound."""
    if not end.unfinished_action:
        return []
    return [Finding("iterators", f"{end.unfinished_action} did not return within {end.bound:.1f}s of the terminal event",
                    evidence=end.action_stacks)]


def find_unresponsive(end: FlowEnd) -> list[Finding]:
    """The flow did not end and the agent stopped answering (its loop is blocked)."""
    if not end.unresponsive:
        return []
    return [Finding("iterators", f"the flow did not end by its deadline and the agent stopped answering ({end.unresponsive})")]


def find_close_failed(end: FlowEnd) -> list[Finding]:
    """nc.close() raised or did not return."""
    if not end.close_error:
        return []
    return [Finding("iterators", f"nc.close() did not complete: {end.close_error}", evidence=end.close_stacks)]


def find_overran(cont: dict | None, bound: float) -> list[Finding]:
    """After the waiting call ended (a cancel), a next call with the same objects that took
    longer than its own timeout plus the stuck bound (it should have ended by its timeout)."""
    slow = [c for c in (cont or {}).get("overran") or () if c["took"] > c["timeout"] + bound]
    return [Finding("iterators", f"{c['label']} after the waiting call ended took {c['took']:.1f}s, "
                                 f"past its own timeout of {c['timeout']:.1f}s (+{bound:.1f}s)",
                    evidence=f"waiting call(s) ended: {(cont or {}).get('ended')}") for c in slow]


def find_cancel_ignored(cont: dict | None, bound: float) -> list[Finding]:
    """A waiting call the caller gave up on (a cancel, its deadline) that went on waiting
    longer than the stuck bound before it ended (it must end at once: stall or not)."""
    late = [e for e in (cont or {}).get("ended") or () if e.get("after_cancel", 0.0) > bound]
    return [Finding("iterators", f"{e['label']} ended {e['after_cancel']:.1f}s after the caller gave up ({e['how']}), "
                                 f"not within {bound:.1f}s",
                    evidence=f"the waiting call took {e['took']:.1f}s in all; ended: {(cont or {}).get('ended')}") for e in late]


check("iterators", "pending __anext__/next_msg/fetch calls (and drains, the flow's terminal action, close) "
                   "that do not resolve after the terminal event")


@step("iterators", AFTER_FLOW, needs=("flow_end", "outcome"))
def after_flow(s: Sources) -> list[Finding]:
    """Calls still pending at the bound, a hung terminal action, a drain that did not return,
    a next call after a cancel that overran its own timeout."""
    end: FlowEnd = s.flow_end
    out: list[Finding] = []
    if end.stuck is not None:
        out += find_stuck_calls(end.stuck, end.stuck_cpu_busy, end.stuck_after, fallback_stack=end.stuck_stacks)
    if end.after_heal is not None:
        out += find_stuck_calls(end.after_heal, end.after_heal_cpu_busy, "the heal (the fault gone)",
                                fallback_stack=end.after_heal_stacks)
    cont = (s.outcome or {}).get("continuation")
    out += find_cancel_ignored(cont, end.bound) + find_overran(cont, end.bound)
    return out + find_unresponsive(end) + find_hung_finish(end) + find_unfinished_action(end)


@step("iterators", AFTER_CLOSE, needs=("flow_end",))
def after_close(s: Sources) -> list[Finding]:
    """nc.close() itself must complete."""
    return find_close_failed(s.flow_end)
