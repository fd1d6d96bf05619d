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


# When a fault's terminal event happens (see `Fault.terminal`).
AT_INJECT, AT_HEAL, NOT_TERMINAL = "inject", "heal", ""


@dataclasses.dataclass(frozen=True)
class Fault:
    """A fault, and what it is: the runner reads these attributes, never the fault's name.

    - `terminal`: whether the fault ends the flow's subscription or connection, so that
      every pending call must resolve within the stuck bound of it, and from when:
      `AT_INJECT` (a drain, unsubscribe or close issued on its own), `AT_HEAL` (such a drain
      issued under a stall, which can only finish once healed), `NOT_TERMINAL` (a stall, a
      disconnect, the server's lame-duck mode: the client reconnects and its subscription
      lives on, so a pending call ends by its own timeout or the flow's deadline);
    - `closes_client`: the client's connection is closed by the fault itself (no recovery
      round trip can be asked of it);
    - `client_action`: the name of the action the agent performs on the client, if any;
    - `needs_link`: that action can only finish over a working link (a drain waits for the
      server), so under a stall it is held to the bound from the heal; one that needs no
      link (unsubscribe, close) is held to it from the inject, stall or not;
    - `parts`: a composite's parts, in injection order (empty for a single fault).
    """

    name: str
    inject: Step
    heal: Step
    evidence: Evidence
    doc: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # fault_params it reads, with defaults
    terminal: str = NOT_TERMINAL
    closes_client: bool = False
    client_action: str = ""
    needs_link: bool = False
    parts: "tuple[Fault, ...]" = ()
    cluster: bool = False  # acts on a cluster's nodes, routes or leaders: only on a cluster (`cluster: 3`)


FAULTS: dict[str, Fault] = {}


def register(name: str, inject: Step, heal: Step, evidence: Evidence, doc: str = "",
             params: Mapping[str, Any] | None = None, *, terminal: str = NOT_TERMINAL,
             closes_client: bool = False, client_action: str = "", needs_link: bool = False,
             cluster: bool = False) -> None:
    assert terminal in (AT_INJECT, AT_HEAL, NOT_TERMINAL), terminal
    FAULTS[name] = Fault(name, inject, heal, evidence, doc, dict(params or {}), terminal, closes_client, client_action,
                         needs_link, cluster=cluster)


def composite_terminal(parts: "list[Fault]") -> str:
    """A composite's terminal event: at inject if every part ends the subscription there, or
    if a terminal part needs no link (a close must return, stall or not); at heal if the
    terminal parts need the link (a drain under a stall finishes only once healed); else none."""
    ending = [f for f in parts if f.terminal]
    if not ending:
        return NOT_TERMINAL
    if len(ending) == len(parts) or any(not f.needs_link for f in ending):
        return AT_INJECT
    return AT_HEAL


def declared(f: Fault) -> str:
    """What `f` declares about itself, for `harness list --catalogue` ("" if nothing)."""
    bits = [f"terminal at {f.terminal}"] if f.terminal else []
    bits += ["closes the client"] if f.closes_client else []
    bits += ["needs a cluster"] if f.cluster else []
    bits += [f"action {f.client_action}" + (" (needs the link)" if f.needs_link else "")] if f.client_action else []
    return f" [{'; '.join(bits)}]" if bits else ""


# Read by every composite: seconds between injecting one part and the next. A barrier
# trigger's flow is released after the first part, so with a stagger the flow runs under
# the first part for that long before the next (e.g. a publisher fills its buffers under an
# upstream stall, then the application closes the connection).
COMPOSITE_PARAMS = {"stagger": 0.0}


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

    merged = {**COMPOSITE_PARAMS, **{k: v for f in chosen for k, v in f.params.items()}}
    actions = [f.client_action for f in chosen if f.client_action]
    return Fault(name, inject, heal, evidence, " then ".join(f.doc for f in chosen), merged,
                 terminal=composite_terminal(chosen), closes_client=any(f.closes_client for f in chosen),
                 client_action="+".join(actions), needs_link=any(f.needs_link for f in chosen), parts=tuple(chosen),
                 cluster=any(f.cluster for f in chosen))


def parts(name: str) -> list[str]:
    return name.split("+")


from harness.faults import cancel, cluster, disconnect, drain, stall  # noqa: E402,F401  (they register)
