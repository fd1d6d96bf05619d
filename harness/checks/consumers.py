"""Leftover consumers: created during the scenario and still on the server after the flow.

Classified: deleted by the client (gone); reaped by the server after its inactive
threshold (gone later); or kept alive — still push-bound, still holding waiting pull
requests, or surviving its threshold (or having none). Only the last is a leak.
"""

from __future__ import annotations

import time
from typing import Any

from harness.checks import AFTER_CLOSE, AFTER_FLOW, Finding, Sources, check, step


def classify(c: dict[str, Any], client_open: bool) -> str | None:
    """Why consumer `c` is kept alive, or None if it is on its way out."""
    if c["push_bound"] and not client_open:
        return "still push-bound after the client closed"
    if c["push_bound"]:
        return "still push-bound (live interest) after the flow ended"
    if c["num_waiting"] > 0 and not client_open:
        return f"still holds {c['num_waiting']} waiting pull request(s) after the client closed"
    if not c["inactive_threshold"]:
        return "has no inactive threshold: it will never be reaped"
    return None


def find_leftover_consumers(
    now: dict[str, dict[str, Any]], baseline: set[str], client_open: bool, phase: str
) -> list[Finding]:
    out = []
    for name, c in sorted(now.items()):
        if name in baseline:
            continue
        why = classify(c, client_open)
        if why is None:
            continue
        out.append(
            Finding(
                check="consumers",
                summary=f"consumer {name} kept alive ({phase}): {why}",
                evidence=", ".join(f"{k}={v}" for k, v in c.items()),
            )
        )
    return out


def find_unreaped(left: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> list[Finding]:
    """Consumers (`left`, waited on past their inactive threshold) the server still has (`now`)."""
    return [
        Finding(
            "consumers",
            f"consumer {n} survived its inactive threshold ({c['inactive_threshold']}s) after close",
            evidence=", ".join(f"{k}={v}" for k, v in now[n].items()),
        )
        for n, c in sorted(left.items())
        if n in now
    ]


check("consumers", "consumers the flow or the client created, kept alive after the flow")


@step("consumers", AFTER_FLOW, needs=("observer",))
def after_flow(s: Sources) -> list[Finding]:
    """Settled: the server sees the client's UNSUB a moment later than the client returns."""
    base = set(s.baseline.consumers)
    return s.settled(lambda: find_leftover_consumers(s.consumers(), base, True, AFTER_FLOW))


@step("consumers", AFTER_CLOSE, needs=("observer",))
def after_close(s: Sources) -> list[Finding]:
    """Kept alive after close, or on their way out but surviving their inactive threshold."""
    base = set(s.baseline.consumers)
    # Settled: the server drops the closed connection's interest a moment after close returns.
    found = s.settled(lambda: find_leftover_consumers(s.consumers(), base, False, AFTER_CLOSE))
    if found:
        return found
    # Consumers on their way out: wait (bounded, inherent) for the server to reap them.
    left = {n: c for n, c in s.consumers().items() if n not in base}
    thresholds = [c["inactive_threshold"] or 0 for c in left.values()]
    if not left or max(thresholds) > s.consumer_wait:
        if left:
            s.event("consumers not waited for", names=sorted(left), thresholds=thresholds)
        return []
    t = time.monotonic()
    end = t + max(thresholds) + 1.5
    while time.monotonic() < end:
        now = s.consumers()
        if not any(n in now for n in left):
            break
        time.sleep(0.25)
    s.add_inherent(time.monotonic() - t)
    now = s.consumers()
    for n in sorted(set(left) - set(now)):
        s.event("consumer reaped", name=n)
    return find_unreaped(left, now)
