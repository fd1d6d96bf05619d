"""Progress of a run: on a terminal, one live line (done/total, not passed so far, elapsed,
estimated time left); elsewhere (CI logs), one plain line per finished scenario.

`Progress` is a value-in, text-out helper: the plugin feeds it finished records and
writes what it returns, so the format is unit-tested without a terminal.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

SHORT = {"passed": "PASS", "failed": "FAIL", "inconclusive": "INCONCLUSIVE", "error": "ERROR"}


def duration(seconds: float) -> str:
    """`45s`, `3m05s`, `1h02m`: short and fixed in form."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


@dataclasses.dataclass
class Progress:
    """Counts finished scenarios; renders the live line or the plain line."""

    total: int
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    not_passed: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def finished(self, record: Mapping[str, Any]) -> None:
        self.done += 1
        v = record["verdict"]
        if v != "passed":
            self.not_passed[v] = self.not_passed.get(v, 0) + 1

    def status(self) -> str:
        """`12/34 · failed 3, error 1 · 1m20s elapsed · ~2m05s left`."""
        elapsed = self.clock() - self.started
        bad = ", ".join(f"{v} {n}" for v, n in self.not_passed.items()) or "none failed"
        parts = [f"{self.done}/{self.total}" if self.total else f"{self.done}", bad, f"{duration(elapsed)} elapsed"]
        if self.done and self.total > self.done:
            parts.append(f"~{duration(elapsed / self.done * (self.total - self.done))} left")
        return " · ".join(parts)

    def live_line(self) -> str:
        return f"nats-chaos {self.status()}"

    def plain_line(self, record: Mapping[str, Any]) -> str:
        wall = record.get("timings", {}).get("wall", 0.0)
        alone = ", judged alone in the serial lane" if record.get("lane") else ""  # harness/schedule.py
        return f"[{self.status()}] {SHORT.get(record['verdict'], record['verdict'])} {record['id']} ({wall:.1f}s{alone})"
