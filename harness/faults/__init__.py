"""Faults: stall, disconnect, drain — each with `inject`, `heal` and `evidence`.

`evidence` is proof the fault really took effect; without it a scenario is
*inconclusive*, never *passed*. `heal` runs in the runner's `finally`, always.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

# fx: the runner's context (env, agent, observer, names, scenario, events since inject)
Step = Callable[[Any], None]
Evidence = Callable[[Any], "tuple[bool, str]"]


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    inject: Step
    heal: Step
    evidence: Evidence
    doc: str = ""


FAULTS: dict[str, Fault] = {}


def register(name: str, inject: Step, heal: Step, evidence: Evidence, doc: str = "") -> None:
    FAULTS[name] = Fault(name, inject, heal, evidence, doc)


from harness.faults import disconnect, drain, stall  # noqa: E402,F401  (they register)
