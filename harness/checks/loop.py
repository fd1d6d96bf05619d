"""A blocked event loop: the agent's heartbeat stopped; or, for an agent with no single event
loop (Go), CPU burnt while the flow waits in a client call.

The agent's watcher (runner side) records each gap with the CPU share during it and the
stacks faulthandler dumped (it works even while the loop is blocked); each gap is one finding.
A Go agent's heartbeat never stops (the runtime preempts a spinning goroutine): there the
watcher records spans of `SPIN_WINDOW` with a tracked call pending and the CPU share of a
spin (`is_spin`), with the goroutine dump the agent wrote on SIGUSR1.
"""

from __future__ import annotations

from typing import Any

from harness.checks import AFTER_CLOSE, Finding, Sources, check, step
from harness.checks.iterators import is_spin


def find_blocked_loop(gaps: list[dict[str, Any]]) -> list[Finding]:
    out = []
    for g in gaps:
        if g.get("kind") == "spin_while_waiting":  # Go: no event loop, CPU burnt while the flow waits
            out.append(Finding("loop", f"spinning for {g['duration']:.2f}s while the flow waited in a client call "
                                       f"(cpu {g['cpu_busy']:.0%})", evidence=g["stacks"]))
            continue
        kind = "spinning" if is_spin(g["cpu_busy"]) else "blocked (idle CPU)"
        out.append(Finding("loop", f"event loop {kind} for {g['duration']:.2f}s (cpu {g['cpu_busy']:.0%})", evidence=g["stacks"]))
    return out


check("loop", "the agent's event loop missed its heartbeat (blocked or spinning)")


@step("loop", AFTER_CLOSE, needs=("heartbeats",))
def after_close(s: Sources) -> list[Finding]:
    """Every gap between the heartbeats the agent emitted during the scenario."""
    return find_blocked_loop(s.heartbeat_gaps())
