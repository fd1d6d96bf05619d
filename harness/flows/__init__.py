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
the stuck-iterator check watches), `track(sub)` (the subscription drain faults act on),
`delivered(msg)` (every Next/ack flow calls it for each JetStream message it is handed: the
`delivery` check's ledger of stream sequences and delivery counts) and
`terminal(what)` (the flow's own terminal event, e.g. a worker's shutdown drain: what it
leaves pending must resolve within the stuck bound of it).

Register your own flows with `@flow(...)` in a module and pass it with `--chaos-flows module`
(`harness run --flows module`; see examples/order_worker/).

Client releases differ: a flow declares the client API it needs (`requires=`, dotted paths
under the `nats` package, optionally naming a parameter: `"nats.aio.msg.Msg.nak(delay)"`).
The agent checks them against the client under test; a flow whose API a release lacks is
*not applicable* there (reported apart, never an error). Where a release spells the same
thing differently, `harness.flows.compat` holds the small shims.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
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


class CallCancelled(Exception):
    """The flow's waiting call (`ctx.waiting`) ended because the caller gave up: the cancel
    family cancelled its task (`how` "cancelled") or its deadline fired ("deadline"). The flow
    goes on with the same objects (see harness.flows.continuation)."""

    def __init__(self, label: str, how: str) -> None:
        super().__init__(f"{label}: {how}")
        self.label, self.how = label, how


PENDING = object()  # `ctx.waiting(...).result(within=...)`: the waiting call is still in flight


class NotApplicable(Exception):
    """Raised by a flow whose client release lacks what the flow's params ask for (e.g. an
    ordered consumer): the scenario is *not applicable* to this target, not an error."""


def one_api(ctx: Any) -> None:
    """NotApplicable when the scenario picks one of nats.go's two JetStream APIs (`api:
    jetstream` for the jetstream package, `legacy` for JetStreamContext): nats-py has one."""
    api = ctx.params.get("api", "")
    if api:
        raise NotApplicable(f"api: {api} picks one of nats.go's two JetStream APIs; nats-py has one")


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
    requires: tuple[str, ...] = ()  # client API the flow needs (see the module docstring)
    module: str = ""  # where the flow is defined (an agent that cannot import it cannot run it)
    # The flow ends by closing its connection itself (a worker's shutdown: `nc.drain()`), so
    # no recovery round trip can be asked of that connection afterwards.
    closes_client: bool = False

    def validate_params(self, params: Mapping[str, Any]) -> None:
        known = {**COMMON_PARAMS, **self.defaults}
        for k, v in params.items():
            if k not in known:
                raise ParamError(k, f"unknown parameter for flow {self.name} (known: {', '.join(sorted(known)) or 'none'})")
            if k == "replicas" and v not in (1, 3):
                raise ParamError(k, f"must be 1 or 3 (3 needs `cluster: 3`), got {v!r}")
            want = type(known[k])
            if not fits(v, want):
                raise ParamError(k, f"must be {want.__name__}, got {type(v).__name__} {v!r}")


FLOWS: dict[str, FlowSpec] = {}

# Parameters every flow takes, read by the observer's prepare rather than by the flow:
# `replicas` replicates the streams, buckets and object stores prepare creates (3 on a cluster).
COMMON_PARAMS: dict[str, Any] = {"replicas": 1}


def flow(
    name: str,
    *,
    triggers: tuple[str, ...],
    prepare: PrepareFn | None = None,
    defaults: Mapping[str, Any] | None = None,
    consumer_stream: str = "stream",
    requires: tuple[str, ...] = (),
    closes_client: bool = False,
) -> Callable[[RunFn], RunFn]:
    """Register `run` as the flow `name`."""

    def deco(run: RunFn) -> RunFn:
        FLOWS[name] = FlowSpec(
            name=name, run=run, prepare=prepare, triggers=tuple(triggers), defaults=dict(defaults or {}),
            consumer_stream=consumer_stream, doc=(run.__doc__ or "").strip().splitlines()[0] if run.__doc__ else "",
            requires=tuple(requires), module=run.__module__,
            closes_client=closes_client,
        )
        return run

    return deco


BUILTIN_MODULES = ("harness.flows.get", "harness.flows.next", "harness.flows.ack", "harness.flows.worker",
                   "harness.flows.publish", "harness.flows.interest", "harness.flows.soak", "harness.flows.selftest",
                   "harness.flows.continuation", "harness.flows.selftest_cancel", "harness.flows.selftest_cluster",
                   "harness.flows.apis")


class FlowModuleError(ImportError):
    """A user's flow module (`--flows MODULE`) could not be imported."""


def load_flow_modules(extra: tuple[str, ...] = (), tolerant: bool = False) -> dict[str, str]:
    """Import the built-in flow modules and any user modules (which register flows on import).

    A user module is found as `python -m` would find it: from the current directory too (the
    agent is started with `-m` from there), e.g. `--flows examples.order_worker.orders`.
    `tolerant` (the agent, on an older client): a built-in module that does not import is
    reported ({module: error}) instead of raised, and its flows are not applicable there.
    """
    failed: dict[str, str] = {}
    for m in BUILTIN_MODULES:
        try:
            importlib.import_module(m)
        except ImportError as e:
            if not tolerant:
                raise
            failed[m] = f"{type(e).__name__}: {e}"
    if extra and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    for m in extra:
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise FlowModuleError(
                f"cannot import flow module {m!r}: {e}\n"
                f"Hint: give its dotted name from the current directory ({os.getcwd()}) or put its folder on PYTHONPATH"
            ) from None
    return failed


def missing_api(spec: FlowSpec) -> str:
    """Why the client under test cannot run `spec` ("" if it can): the first `requires` entry
    its release lacks. Evaluated in the agent, against the client it imports."""
    import inspect

    for req in spec.requires:
        path, _, param = req.partition("(")
        param = param.rstrip(")")
        parts = path.split(".")
        try:
            obj: Any = importlib.import_module(parts[0])
        except ImportError:
            return f"no module {parts[0]}"
        for i, attr in enumerate(parts[1:], start=1):
            if hasattr(obj, attr):
                obj = getattr(obj, attr)
                continue
            try:  # a submodule not imported by its package
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except ImportError:
                return f"this release has no {'.'.join(parts[: i + 1])}"
        if param:
            try:
                params = inspect.signature(obj).parameters
            except (TypeError, ValueError):
                continue
            if param not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                return f"this release's {path}() takes no {param!r}"
    return ""


# The built-in flows register on import; on an older client a module may not import at all.
IMPORT_FAILURES: dict[str, str] = load_flow_modules(tolerant=True)
