"""Memory growth over a soak: the same flow repeated for many rounds, sampled after each.

Growth is a slope over rounds after a warm-up, never a single reading. The agent's managed
memory is judged — nats-py: `tracemalloc`'s traced bytes, objects the garbage collector
tracks, asyncio tasks; nats.go: the live heap after `runtime.GC()`, heap objects, goroutines,
the connection's status listeners; both: the client's subscriptions — each against a stated
bound per round. RSS and
the server's view (its memory from `/varz`, the flow's consumers' ack-pending and
redelivered counts) are recorded beside them as context: a flow such as `nak(delay)` keeps
messages pending on the server by design, and RSS lags what the runtime frees.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from harness.checks import AFTER_FLOW, Finding, Sources, check, step

# Growth per round beyond which a metric is a finding. A clean round leaves nothing behind;
# these absorb the noise of caches that fill once and of a few objects in flight at the
# moment of sampling (measured on the clean soak flows: see docs/design.md "Memory growth").
# Each agent reports its runtime's own figures (nats-py: traced, objects, tasks; nats.go: heap,
# heap_objects, goroutines, listeners; both: subs, rss); a bound applies where the metric exists.
BOUNDS: dict[str, float] = {
    "traced": 1024.0,  # bytes per round
    "objects": 8.0,  # gc-tracked objects per round
    "tasks": 0.05,  # asyncio tasks per round (one leaked task every 20 rounds)
    "subs": 0.05,  # client subscriptions per round
    # nats.go: the live heap after two forced collections (clean soaks on v1.55.0: at most ~215
    # B/round, a runtime that sizes its internal tables in steps) and its objects (at most 0.6/round)
    "heap": 1024.0,  # bytes per round
    "heap_objects": 8.0,  # heap objects per round
    "goroutines": 0.05,  # goroutines per round (one leaked goroutine every 20 rounds)
    "listeners": 0.05,  # the connection's status listeners per round (nc.StatusChanged channels)
}
UNITS = {"traced": "B", "objects": "objects", "tasks": "tasks", "subs": "subscriptions", "rss": "B",
         "heap": "B", "heap_objects": "objects", "goroutines": "goroutines", "listeners": "listeners",
         "server_mem": "B", "ack_pending": "messages", "redelivered": "messages"}
CONTEXT = ("rss", "server_mem", "ack_pending", "redelivered")  # recorded, not judged
MIN_FIT = 4  # rounds after the warm-up needed for a slope to mean anything


def warmup_rounds(rounds: int) -> int:
    """Rounds left out of the fit: caches fill and pools grow in the first ones."""
    return max(2, rounds // 5)


def slope(ys: list[float]) -> float:
    """Least-squares slope of `ys` against 0, 1, 2, ... (growth per round)."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx = (n - 1) / 2
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in range(n))
    return sum((x - mx) * (y - my) for x, y in zip(range(n), ys)) / sxx


@dataclasses.dataclass(frozen=True)
class MemorySeries:
    """Per-round samples of a soak: metric name -> one value per round (round 1 first)."""

    metrics: Mapping[str, tuple[float, ...]]

    @property
    def rounds(self) -> int:
        return max((len(v) for v in self.metrics.values()), default=0)

    @property
    def warmup(self) -> int:
        return warmup_rounds(self.rounds)

    def slopes(self) -> dict[str, float]:
        """Growth per round of every metric, fitted after the warm-up."""
        w = self.warmup
        return {k: round(slope(list(v[w:])), 3) for k, v in self.metrics.items() if len(v) - w >= 2}

    def to_json(self) -> dict[str, Any]:
        """The record's `series["memory"]`: what the report plots (one small chart per metric)."""
        return {
            "rounds": self.rounds,
            "warmup": self.warmup,
            "metrics": {k: list(v) for k, v in self.metrics.items()},
            "units": {k: UNITS.get(k, "") for k in self.metrics},
            "slopes": self.slopes(),
            "bounds": {k: b for k, b in BOUNDS.items() if k in self.metrics},
        }

    @classmethod
    def from_samples(cls, samples: list[Mapping[str, Any]]) -> "MemorySeries":
        keys = list(dict.fromkeys(k for s in samples for k in s))
        return cls({k: tuple(float(s.get(k, 0) or 0) for s in samples) for k in keys})


def find_growth(series: MemorySeries, bounds: Mapping[str, float] = BOUNDS) -> list[Finding]:
    """Each judged metric whose slope after the warm-up exceeds its bound per round."""
    if series.rounds - series.warmup < MIN_FIT:
        return []
    slopes = series.slopes()
    out = []
    for k, bound in bounds.items():
        if k not in slopes or slopes[k] <= bound:
            continue
        v = series.metrics[k]
        out.append(Finding(
            "memory",
            f"{k} grows {slopes[k]:g} {UNITS[k]} per round over {series.rounds - series.warmup} rounds "
            f"after a {series.warmup}-round warm-up (bound {bound:g} per round)",
            evidence=f"{k} per round (warm-up first): " + ", ".join(f"{x:g}" for x in v)
            + "\nslopes per round: " + ", ".join(f"{m}={s:g}" for m, s in slopes.items()),
        ))
    return out


check("memory", "a soak's per-round growth of the agent's managed memory, objects, tasks or goroutines and subscriptions "
                "(RSS and the server's view as context)")


@step("memory", AFTER_FLOW, needs=("samples",))
def after_flow(s: Sources) -> list[Finding]:
    """Fit a slope per metric after the warm-up; only soak scenarios have samples."""
    if not s.samples:
        return []
    series = MemorySeries.from_samples(s.samples)
    s.event("memory slopes", rounds=series.rounds, warmup=series.warmup, **series.slopes())
    return find_growth(series)
