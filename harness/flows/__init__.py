"""Flows: what a user of the client does, written the way a careful user writes it.

A flow has two halves:
- `prepare(js, names, params)` runs in the runner's *observer* (a direct connection,
  no proxy) and creates what the flow needs: streams, consumers, buckets, messages;
- `run(ctx)` runs in the *agent* process, against the client under test, through the
  proxy. It honours its own timeouts and cleans up in `finally`, so whatever is left
  behind is the client's doing, not the flow's.

`ctx` (see `harness.agent.context.FlowContext`) gives the flow `nc`, `js`, `names`,
`params`, `checkpoint(name)` (a named point; a barrier trigger holds the flow there
while the fault goes in), `call(label, awaitable)` (a tracked blocking call, which
the stuck-iterator check watches) and `track(sub)` (the subscription drain faults act on).

Register your own flows with `@flow(...)` in a module and pass it with `--flows module`.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Awaitable, Callable, Mapping

PrepareFn = Callable[[Any, "Names", Mapping[str, Any]], Awaitable[None]]
RunFn = Callable[[Any], Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class Names:
    """Per-scenario isolated names: nothing is shared between scenarios."""

    tag: str

    @property
    def stream(self) -> str:
        return f"CHAOS_{self.tag}"

    @property
    def subject(self) -> str:
        return f"chaos.{self.tag}"

    @property
    def consumer(self) -> str:
        return f"c_{self.tag}"

    @property
    def bucket(self) -> str:
        return f"b_{self.tag}"

    @property
    def echo_subject(self) -> str:
        """Subject the observer answers on, for the recovery check's round trip."""
        return f"chaos.echo.{self.tag}"


class IntegrityError(AssertionError):
    """Raised by a flow when the client handed it wrong data (truncated, corrupted, duplicated).

    Unlike a timeout or a connection error, this is never an acceptable outcome of a fault:
    the `messages` check reports it.
    """


class FlowGaveUp(TimeoutError):
    """Raised by a flow that reached its own deadline before it had what it waits for.

    A careful user gives up eventually: the flow ends itself (instead of being cut off by
    the runner) and says how far it got; the `messages` check reports what never arrived.
    """


def fits(value: Any, want: type) -> bool:
    """Whether a scenario file's `value` fits a setting of type `want`: an int is a float,
    a bool is never a number (YAML `yes` is not 1)."""
    if isinstance(value, bool):
        return want is bool
    if want is float:
        return isinstance(value, (int, float))
    return isinstance(value, want)


class ParamError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class FlowSpec:
    """A registered flow."""

    name: str
    run: RunFn
    prepare: PrepareFn | None
    triggers: tuple[str, ...]
    defaults: Mapping[str, Any]
    consumer_stream: str = "stream"  # which stream's consumers the flow (or client) creates: stream|object|kv
    doc: str = ""

    def validate_params(self, params: Mapping[str, Any]) -> None:
        for k, v in params.items():
            if k not in self.defaults:
                raise ParamError(k, f"unknown parameter for flow {self.name} (known: {', '.join(sorted(self.defaults)) or 'none'})")
            want = type(self.defaults[k])
            if not fits(v, want):
                raise ParamError(k, f"must be {want.__name__}, got {type(v).__name__} {v!r}")


FLOWS: dict[str, FlowSpec] = {}


def flow(
    name: str,
    *,
    triggers: tuple[str, ...],
    prepare: PrepareFn | None = None,
    defaults: Mapping[str, Any] | None = None,
    consumer_stream: str = "stream",
) -> Callable[[RunFn], RunFn]:
    """Register `run` as the flow `name`."""

    def deco(run: RunFn) -> RunFn:
        FLOWS[name] = FlowSpec(
            name=name, run=run, prepare=prepare, triggers=tuple(triggers), defaults=dict(defaults or {}),
            consumer_stream=consumer_stream, doc=(run.__doc__ or "").strip().splitlines()[0] if run.__doc__ else "",
        )
        return run

    return deco


BUILTIN_MODULES = ("harness.flows.get", "harness.flows.next", "harness.flows.ack", "harness.flows.selftest")


def load_flow_modules(extra: tuple[str, ...] = ()) -> None:
    """Import the built-in flow modules and any user modules (which register flows on import)."""
    for m in (*BUILTIN_MODULES, *extra):
        importlib.import_module(m)


load_flow_modules()
