"""A blocked event loop: the agent's heartbeat stopped; or, for an agent with no single event
loop (Go), CPU burnt while the flow waits in a client call.

The agent's watcher (runner side) records each gap with the CPU share during it and the
stacks faulthandler dumped (it works even while the loop is blocked); each gap is one finding,
judged on the agent's own time. With many scenarios in flight a healthy loop can be kept
off the CPU: the agent stamps each heartbeat with the time its loop's thread waited for a CPU
(Linux schedstat). Taken that wait out, a gap is:
- the agent's when the rest is over the bound (a block, or CPU work that long): a finding;
- the machine's when the rest is within the bound and the agent was idle in it (a healthy
  loop sleeps between heartbeats and then waited for a CPU): no finding;
- undecided when the rest is within the bound but the agent was busy in it: a spin the
  machine slowed down, or a short burst of work the machine stretched — no measurement tells
  them apart (a spin's CPU time shrinks with the share the machine gives it: at load 20 on
  two cores, measured, a 2 s spin burnt less than a stretched 20 ms burst would need to be
  told from it). It is a finding, as a serial run judges it, and the scheduler runs such a
  scenario again alone (harness/schedule.py, the serial lane) before its verdict stands.
The bound itself (0.75 s) is unchanged.
A Go agent's heartbeat never stops (the runtime preempts a spinning goroutine): there the
watcher records spans of `SPIN_WINDOW` with a tracked call pending and the CPU share of a
spin (`is_spin`), with the goroutine dump the agent wrote on SIGUSR1.
"""

from __future__ import annotations

from typing import Any

from harness.checks import AFTER_CLOSE, Finding, Sources, check, step
from harness.checks.iterators import is_spin


AGENT, MACHINE, UNDECIDED = "agent", "machine", "undecided"


def whose_gap(gap: dict[str, Any]) -> str:
    """Who made a heartbeat gap: the agent, the machine (the loop waited for a CPU and was idle
    otherwise), or undecided (within the bound apart from that wait, but busy all of it)."""
    queued = gap.get("queued")
    if queued is None or "bound" not in gap or gap["duration"] - queued > gap["bound"]:
        return AGENT
    return UNDECIDED if is_spin(gap["cpu_busy"]) else MACHINE


def machine_made(gap: dict[str, Any]) -> bool:
    """Whether a heartbeat gap was the machine's alone (no finding)."""
    return whose_gap(gap) == MACHINE


def find_blocked_loop(gaps: list[dict[str, Any]]) -> list[Finding]:
    out = []
    for g in gaps:
        if g.get("kind") == "spin_while_waiting":  # Go: no event loop, CPU burnt while the flow waits
            out.append(Finding("loop", f"spinning for {g['duration']:.2f}s while the flow waited in a client call "
                                       f"(cpu {g['cpu_busy']:.0%})", evidence=g["stacks"]))
            continue
        if machine_made(g):
            continue
        kind = "spinning" if is_spin(g["cpu_busy"]) else "blocked (idle CPU)"
        waited = f", {g['queued']:.2f}s of it waiting for a CPU" if g.get("queued", 0) >= 0.05 else ""
        out.append(Finding("loop", f"event loop {kind} for {g['duration']:.2f}s (cpu {g['cpu_busy']:.0%}{waited})",
                           evidence=g["stacks"]))
    return out


check("loop", "the agent's event loop missed its heartbeat (blocked or spinning)")


@step("loop", AFTER_CLOSE, needs=("heartbeats",))
def after_close(s: Sources) -> list[Finding]:
    """Every gap between the heartbeats the agent emitted during the scenario."""
    return find_blocked_loop(s.heartbeat_gaps())
