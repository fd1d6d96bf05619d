"""Checks: each finds residue and returns findings (values); the runner decides the verdict.

A check is `find_*(...) -> list[Finding]`. Snapshot, filter, retry with capped backoff
until clean or a deadline: a clean case returns at once, only a leaky one waits out its grace.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable


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


# name -> one-line description; the runner calls each by name at the right phase
CHECKS: dict[str, str] = {
    "tasks": "asyncio tasks left behind (after the flow, and after close)",
    "consumers": "consumers the flow or the client created, kept alive after the flow",
    "iterators": "pending __anext__/next_msg/fetch calls that do not resolve after the terminal event",
    "subscriptions": "client subscriptions left after the flow",
    "loop": "the agent's event loop missed its heartbeat (blocked or spinning)",
    "recovery": "after heal, the same connection serves a request and a JetStream API call",
    "messages": "data handed to the flow is whole, and acks the client confirmed are on the server",
    "resources": "file descriptors (sockets, pipes, files) left open after close",
}
