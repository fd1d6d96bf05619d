"""Recovery after heal: the same connection serves a request round trip and a JetStream call.

The runner probes (capped backoff, up to `recovery_bound`); if no probe succeeded, this says
what the client was: a *zombie* (it says it is connected but answers nothing) or simply not
reconnected.
"""

from __future__ import annotations

from harness.agent.snapshot import ConnState
from harness.checks import Finding


def find_unrecovered(last_error: str, conn: ConnState, bound: float) -> list[Finding]:
    zombie = conn.connected
    return [
        Finding(
            "recovery",
            f"{'zombie: says connected but' if zombie else 'connection'} did not serve a request within {bound:.0f}s after heal",
            evidence=f"last error: {last_error}\nconnection state: {conn}",
        )
    ]
