"""Leftover consumers: created during the scenario and still on the server after the flow.

Classified: deleted by the client (gone); reaped by the server after its inactive
threshold (gone later); or kept alive — still push-bound, still holding waiting pull
requests, or surviving its threshold (or having none). Only the last is a leak.
"""

from __future__ import annotations

from typing import Any

from harness.checks import Finding


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
