"""Faults: stall, disconnect, drain — each with `inject`, `heal` and `evidence`.

`evidence` is proof the fault really took effect; without it a scenario is
*inconclusive*, never *passed*. `heal` runs in the runner's `finally`, always.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

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
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # fault_params it reads, with defaults


FAULTS: dict[str, Fault] = {}


def register(name: str, inject: Step, heal: Step, evidence: Evidence, doc: str = "",
             params: Mapping[str, Any] | None = None) -> None:
    FAULTS[name] = Fault(name, inject, heal, evidence, doc, dict(params or {}))


def resolve(name: str) -> Fault | None:
    """The fault named `name`; `a+b` composes faults: injected in order, healed in reverse.

    A composite lets a drain happen *during* a stall, e.g. `stall.bandwidth0+drain.nc_drain`.
    Its evidence needs every part's evidence.
    """
    parts = name.split("+")
    if any(p not in FAULTS for p in parts):
        return None
    if len(parts) == 1:
        return FAULTS[name]
    chosen = [FAULTS[p] for p in parts]

    def inject(fx: Any) -> None:
        for f in chosen:
            f.inject(fx)

    def heal(fx: Any) -> None:
        errors: list[BaseException] = []
        for f in reversed(chosen):  # every part is healed, even if one heal fails
            try:
                f.heal(fx)
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def evidence(fx: Any) -> "tuple[bool, str]":
        results = [f.evidence(fx) for f in chosen]
        return all(ok for ok, _ in results), "; ".join(f"{f.name}: {text}" for f, (_, text) in zip(chosen, results))

    merged = {k: v for f in chosen for k, v in f.params.items()}
    return Fault(name, inject, heal, evidence, " then ".join(f.doc for f in chosen), merged)


def parts(name: str) -> list[str]:
    return name.split("+")


from harness.faults import disconnect, drain, stall  # noqa: E402,F401  (they register)
