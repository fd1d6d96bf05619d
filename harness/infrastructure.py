"""The run's own infrastructure: Toxiproxy or nats-server dying outside a fault.

After each scenario (its faults healed) the plugin asks the environment which servers no
longer answer. A death makes the scenario in flight `error` (its evidence on the record),
and the environment is restarted so the run goes on: bounded (`MAX_RESTARTS` per run),
each restart an `infra` line in the journal and a line in the reports. The same component
dying again right after its restart ends the run (exit 2, as before): the machine, not
the client, is the problem then.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

MAX_RESTARTS = 3


@dataclasses.dataclass(frozen=True)
class Death:
    """A server of the environment found dead after a scenario."""

    component: str  # "toxiproxy-server" | "nats-server" | "environment"
    evidence: str


@dataclasses.dataclass(frozen=True)
class InfraEvent:
    """What the run did about a death (written to the journal as an `infra` line)."""

    component: str
    scenario: str
    action: str  # "restarted" | "ended the run" | "restart failed"
    evidence: str
    restarts: int  # restarts done in this run, this one included

    @property
    def summary(self) -> str:
        return f"{self.component} died during {self.scenario}; {self.action} (restart {self.restarts} of {MAX_RESTARTS})" \
            if self.action == "restarted" else f"{self.component} died during {self.scenario}; {self.action}"

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "summary": self.summary}


@dataclasses.dataclass
class Watch:
    """Restarts done so far and which component died after the previous scenario."""

    max_restarts: int = MAX_RESTARTS
    restarts: int = 0
    last: str | None = None  # the component that died after the previous scenario

    def decide(self, deaths: list[Death]) -> str:
        """"none" (all alive), "restart", or "stop" (the same component again, or too many restarts)."""
        if not deaths:
            self.last = None
            return "none"
        comp = deaths[0].component
        if comp == self.last or self.restarts >= self.max_restarts:
            return "stop"
        return "restart"

    def restarted(self, component: str) -> None:
        self.restarts += 1
        self.last = component


def errored(record: Mapping[str, Any], death: Death) -> dict[str, Any]:
    """The scenario in flight when a server died: `error`, with the death as evidence."""
    rec = dict(record)
    first = death.evidence.splitlines()[0] if death.evidence else ""
    was = rec.get("verdict")
    rec["verdict"] = "error"
    rec["reason"] = f"{death.component} died during the scenario (outside a fault): {first}"
    wall = rec.get("timings", {}).get("wall", 0.0)
    rec["events"] = [*rec.get("events", ()), {"t": wall, "source": "runner", "what": "infrastructure died",
                                               "component": death.component, "verdict_before": was,
                                               "evidence": death.evidence[-3000:]}]
    return rec
