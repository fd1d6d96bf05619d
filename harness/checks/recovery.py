"""Recovery after heal: the same connection serves a request round trip and a JetStream call.

The step probes (capped backoff, up to `recovery_bound`); if no probe succeeded, this says
what the client was: a *zombie* (it says it is connected but answers nothing) or simply not
reconnected. Only after a fault that leaves the connection open (not close or nc.drain).
"""

from __future__ import annotations

import time

from harness.agent.snapshot import ConnState
from harness.checks import AFTER_FLOW, Finding, ProbeFailed, Sources, check, step


def find_unrecovered(last_error: str, conn: ConnState, bound: float) -> list[Finding]:
    zombie = conn.connected
    return [
        Finding(
            "recovery",
            f"{'zombie: says connected but' if zombie else 'connection'} did not serve a request within {bound:.0f}s after heal",
            evidence=f"last error: {last_error}\nconnection state: {conn}",
        )
    ]


check("recovery", "after heal, the same connection serves a request and a JetStream API call")


@step("recovery", AFTER_FLOW, needs=("probe", "snapshot"))
def after_flow(s: Sources) -> list[Finding]:
    """Probe with capped backoff until one succeeds or the recovery bound passes."""
    if not s.faulted or not s.client_open:
        return []
    t = time.monotonic()
    deadline = t + s.recovery_bound
    last = ""
    delay = 0.05
    while True:
        try:
            r = s.probe()
            s.event("recovered", after=round(time.monotonic() - t, 3), rtt=r.get("rtt"))
            return []
        except ProbeFailed as e:
            last = str(e)
        if time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    s.add_inherent(time.monotonic() - t)
    return find_unrecovered(last, s.snapshot().conn, s.recovery_bound)
