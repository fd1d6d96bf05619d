"""Stuck iterators: a pending `__anext__`, `next_msg` or `fetch` (or a drain, or the flow's
terminal action) that does not resolve within a bound after the terminal event.

The runner decides *when* (the terminal event: a drain, unsubscribe, close, or the flow's
own deadline, plus `stuck_after`); this module says *what* is stuck, with the awaiting
stack and whether the agent's CPU was busy (a spin) or idle (a lost wake-up).
"""

from __future__ import annotations

from harness.agent.snapshot import PendingCall, Snapshot
from harness.checks import Finding

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
