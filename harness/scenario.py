"""Scenarios as data: `flow x fault x trigger x checks`, loaded from YAML matrices.

A file in `scenarios/` looks like:

    defaults:            # optional; apply to every entry
      hold: 1.0          # seconds the fault stays in place
      timeout: 15        # the flow's own deadline (seconds)
      checks: [tasks, consumers, iterators, subscriptions, loop, recovery, messages, resources]
    matrix:
      - name: get                        # entry name (for error messages)
        flows: [objectstore.get]
        faults: [none, stall.bandwidth0, disconnect.reset_peer]
        triggers: [in_call]
        params: {size: 2097152}          # flow parameters (override the flow's defaults)
      - name: nak-soak                   # a soak: the flow repeated (no fault), memory sampled per round
        flows: [soak.nak_delay]
        rounds: 40                       # `timeout` is then per round
      - name: get-default-pings
        variant: default-pings           # same scenarios again, ids end in ~default-pings
        flows: [objectstore.get]
        client: {ping_interval: 120}     # nats.connect() overrides for the client under test
        tags: [quick]                    # pytest markers: `harness run -m quick`

Each entry expands to one scenario per flow x fault x trigger, with a stable id
`flow[fault@trigger]` (`flow[none]` for the no-fault control). The whole file is
validated before anything runs; every error names the file, the entry and the field.
"""

from __future__ import annotations

import dataclasses
import os
import random
import zlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from harness.errors import HarnessError

NO_FAULT = "none"
DEFAULT_CHECKS = ("tasks", "consumers", "iterators", "subscriptions", "loop", "recovery", "messages", "delivery", "interest", "memory", "resources",
                  "replicas", "replica_consumers", "replica_interest", "accounting")  # the last four judge clusters only


class ScenarioError(HarnessError):
    """A scenario file is malformed; the message names file, entry and field."""

    def __init__(self, file: str, entry: str, field: str, problem: str, hint: str = "") -> None:
        self.file, self.entry, self.field, self.problem = file, entry, field, problem
        super().__init__(f"{file}: entry {entry}: field '{field}': {problem}", hint=hint)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One runnable scenario: a flow, the fault injected into it, when, and what is checked."""

    id: str
    flow: str
    fault: str
    trigger: str
    checks: tuple[str, ...]
    params: Mapping[str, Any]
    fault_params: Mapping[str, Any]
    hold: float
    timeout: float
    source: str  # "file:entry", for messages and replay
    client: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # nats.connect() overrides
    tags: tuple[str, ...] = ()  # the entry's tags: pytest markers, e.g. `quick` (`harness run -m quick`)
    rounds: int = 1  # > 1: a soak, the flow repeated on one connection and sampled after each round
    cluster: int = 1  # nats-server nodes: 3 runs the scenario on a 3-node JetStream cluster (`--cluster 3`: every one)

    @property
    def is_soak(self) -> bool:
        return self.rounds > 1

    @property
    def is_control(self) -> bool:
        return self.fault == NO_FAULT

    def seed(self, run_seed: int) -> int:
        """This scenario's seed, derived from the run's seed and the stable id."""
        return zlib.crc32(f"{run_seed}:{self.id}".encode()) & 0x7FFFFFFF

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["params"], d["fault_params"], d["client"] = dict(self.params), dict(self.fault_params), dict(self.client)
        return d


def _validate_fault_params(ctx: tuple[str, str], given: Mapping[str, Any], fault_names: list[str], trigger_names: list[str]) -> None:
    """Every fault_params key is read by one of the entry's faults or triggers, with its type."""
    from harness import faults, flows, triggers

    known: dict[str, Any] = {}
    for ft in fault_names:
        f = faults.resolve(ft) if ft != NO_FAULT else None
        known.update(f.params if f else {})
    for t in trigger_names:
        known.update(triggers.TRIGGERS[t].params if t in triggers.TRIGGERS else {})
    for k, v in given.items():
        if k not in known:
            raise ScenarioError(*ctx, f"fault_params.{k}", "not read by any of this entry's faults or triggers",
                                hint=f"known here: {', '.join(sorted(known)) or 'none'}")
        want = type(known[k])
        if not flows.fits(v, want):
            raise ScenarioError(*ctx, f"fault_params.{k}", f"must be {want.__name__}, got {type(v).__name__} {v!r}")


def scenario_id(flow: str, fault: str, trigger: str, variant: str = "") -> str:
    """`flow[fault@trigger]`, `flow[none]` for the control; `~variant` when an entry names one."""
    core = fault if fault == NO_FAULT else f"{fault}@{trigger}"
    return f"{flow}[{core}~{variant}]" if variant else f"{flow}[{core}]"


# -- loading --------------------------------------------------------------------

_ENTRY_KEYS = {"name", "variant", "flows", "faults", "triggers", "checks", "params", "fault_params", "hold", "timeout", "client",
               "rounds", "tags", "cluster"}
MAX_ROUNDS = 100_000
# nats.connect() options a scenario may set for the client under test (type of each)
CLIENT_KEYS: dict[str, type] = {
    "ping_interval": float,
    "max_outstanding_pings": int,
    "reconnect_time_wait": float,
    "max_reconnect_attempts": int,
    "connect_timeout": float,
    "allow_reconnect": bool,
    "drain_timeout": float,
    "flush_timeout": float,
}
_DEFAULT_KEYS = _ENTRY_KEYS - {"name", "variant", "flows", "faults", "triggers", "tags"}


def load_file(path: str | Path) -> list[Scenario]:
    """Load and validate a whole scenario file; raise ScenarioError before anything runs."""
    from harness import checks, faults, flows, triggers  # registries

    path = Path(path)
    fname = str(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ScenarioError(fname, "-", "-", f"cannot read file: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ScenarioError(fname, "-", "-", f"malformed YAML at {where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(fname, "-", "-", "top level must be a mapping with 'matrix'")
    unknown = set(doc) - {"defaults", "matrix"}
    if unknown:
        raise ScenarioError(fname, "-", sorted(unknown)[0], "unknown top-level key", hint="allowed: defaults, matrix")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ScenarioError(fname, "defaults", "defaults", "must be a mapping")
    for k in defaults:
        if k not in _DEFAULT_KEYS:
            raise ScenarioError(fname, "defaults", k, "unknown key", hint=f"allowed: {', '.join(sorted(_DEFAULT_KEYS))}")
    matrix = doc.get("matrix")
    if not isinstance(matrix, list) or not matrix:
        raise ScenarioError(fname, "-", "matrix", "must be a non-empty list of entries")

    out: list[Scenario] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(matrix):
        if not isinstance(raw, dict):
            raise ScenarioError(fname, f"#{i + 1}", "-", "entry must be a mapping")
        entry = str(raw.get("name") or f"#{i + 1}")
        for k in raw:
            if k not in _ENTRY_KEYS:
                raise ScenarioError(fname, entry, k, "unknown key", hint=f"allowed: {', '.join(sorted(_ENTRY_KEYS))}")
        e = {**defaults, **raw}
        ctx = (fname, entry)
        variant = e.get("variant", "")
        if not isinstance(variant, str) or not all(c.isalnum() or c in "-_" for c in variant):
            raise ScenarioError(fname, entry, "variant", f"must be a short name of letters, digits, - and _, got {variant!r}")
        flow_names = _str_list(ctx, e, "flows", required=True)
        fault_names = _str_list(ctx, e, "faults", default=[NO_FAULT])
        trigger_names = _str_list(ctx, e, "triggers", default=[])
        check_names = tuple(_str_list(ctx, e, "checks", default=list(DEFAULT_CHECKS)))
        tags = tuple(_str_list(ctx, e, "tags", default=[]))
        for tag in tags:
            if not tag.isidentifier():
                raise ScenarioError(fname, entry, "tags", f"a tag is a name of letters, digits and _, got {tag!r}")
        params = _mapping(ctx, e, "params")
        fault_params = _mapping(ctx, e, "fault_params")
        client = _mapping(ctx, e, "client")
        for k, v in client.items():
            want = CLIENT_KEYS.get(k)
            if want is None:
                raise ScenarioError(fname, entry, f"client.{k}", "unknown client option", hint=f"known: {', '.join(sorted(CLIENT_KEYS))}")
            if not flows.fits(v, want):
                raise ScenarioError(fname, entry, f"client.{k}", f"must be {want.__name__}, got {type(v).__name__} {v!r}")
        hold = _number(ctx, e, "hold", 1.0, lo=0.0, hi=120.0)
        timeout = _number(ctx, e, "timeout", 15.0, lo=0.5, hi=600.0)
        rounds = e.get("rounds", 1)
        if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
            raise ScenarioError(fname, entry, "rounds", f"must be a whole number of rounds from 1 to {MAX_ROUNDS}, got {rounds!r}")
        if rounds > 1 and fault_names != [NO_FAULT]:
            raise ScenarioError(fname, entry, "rounds", "a soak (rounds > 1) runs the flow without faults",
                                hint="growth per round needs the same round every time; give `faults: [none]` or drop `rounds`")

        cluster = e.get("cluster", 1)
        if isinstance(cluster, bool) or cluster not in (1, 3):
            raise ScenarioError(fname, entry, "cluster", f"must be 1 (one server) or 3 (a 3-node cluster), got {cluster!r}")
        if params.get("replicas", 1) > 1 and cluster < 3:
            raise ScenarioError(fname, entry, "params.replicas", "replicated streams need a cluster", hint="add `cluster: 3` to the entry")
        for c in check_names:
            if c not in checks.CHECKS:
                raise ScenarioError(fname, entry, "checks", f"unknown check {c!r}", hint=f"known: {', '.join(sorted(checks.CHECKS))}")
        for f in flow_names:
            if f not in flows.FLOWS:
                raise ScenarioError(fname, entry, "flows", f"unknown flow {f!r}", hint=f"known: {', '.join(sorted(flows.FLOWS))}")
            try:
                flows.FLOWS[f].validate_params(params)
            except (TypeError, ValueError) as err:
                raise ScenarioError(fname, entry, f"params.{getattr(err, 'field', '?')}", str(err)) from None
        for ft in fault_names:
            if ft != NO_FAULT and faults.resolve(ft) is None:
                bad = next(p for p in faults.parts(ft) if p not in faults.FAULTS)
                raise ScenarioError(
                    fname, entry, "faults", f"unknown fault {bad!r}" + (f" in {ft!r}" if bad != ft else ""),
                    hint=f"known: {', '.join(sorted(faults.FAULTS))} (compose with +)",
                )
        for t in trigger_names:
            if t not in triggers.TRIGGERS:
                raise ScenarioError(fname, entry, "triggers", f"unknown trigger {t!r}", hint=f"known: {', '.join(sorted(triggers.TRIGGERS))}")
        _validate_fault_params(ctx, fault_params, fault_names, trigger_names)
        for ft in fault_names:
            f = faults.resolve(ft) if ft != NO_FAULT else None
            if f is not None and f.cluster and cluster < 3:
                raise ScenarioError(fname, entry, "faults", f"fault {ft!r} needs a cluster", hint="add `cluster: 3` to the entry")
        if any(ft != NO_FAULT for ft in fault_names) and not trigger_names:
            raise ScenarioError(fname, entry, "triggers", "faults are given but no trigger says when they fire")

        for f in flow_names:
            spec = flows.FLOWS[f]
            for t in trigger_names:
                if t not in spec.triggers:
                    raise ScenarioError(
                        fname, entry, "triggers", f"trigger {t!r} does not apply to flow {f!r}",
                        hint=f"{f} supports: {', '.join(spec.triggers)}",
                    )
            combos = [(ft, t) for ft in fault_names if ft != NO_FAULT for t in trigger_names]
            if NO_FAULT in fault_names:
                combos.insert(0, (NO_FAULT, ""))
            for ft, t in combos:
                sid = scenario_id(f, ft, t, variant)
                if sid in seen:
                    raise ScenarioError(fname, entry, "flows", f"scenario {sid} already declared by entry {seen[sid]}")
                seen[sid] = entry
                out.append(
                    Scenario(
                        id=sid, flow=f, fault=ft, trigger=t, checks=check_names,
                        params={**spec.defaults, **params}, fault_params=dict(fault_params),
                        hold=hold, timeout=timeout, source=f"{fname}:{entry}", client=dict(client), rounds=rounds, tags=tags,
                        cluster=cluster,
                    )
                )
    return out


def load_paths(paths: Iterable[str | Path]) -> list[Scenario]:
    """Load every scenario file under the given files/directories (YAML), validated whole."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.y*ml")) if p.is_dir() else [p])
    out: list[Scenario] = []
    for f in files:
        out.extend(load_file(f))
    return out


def _str_list(ctx: tuple[str, str], e: dict, key: str, required: bool = False, default: list | None = None) -> list[str]:
    if key not in e:
        if required:
            raise ScenarioError(*ctx, key, "is required")
        return list(default or [])
    v = e[key]
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise ScenarioError(*ctx, key, f"must be a non-empty list of names, got {v!r}")
    return v


def _mapping(ctx: tuple[str, str], e: dict, key: str) -> dict:
    v = e.get(key) or {}
    if not isinstance(v, dict):
        raise ScenarioError(*ctx, key, f"must be a mapping, got {type(v).__name__}")
    return dict(v)


def _number(ctx: tuple[str, str], e: dict, key: str, default: float, lo: float, hi: float) -> float:
    v = e.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ScenarioError(*ctx, key, f"must be a number of seconds, got {v!r}")
    if not lo <= v <= hi:
        raise ScenarioError(*ctx, key, f"must be between {lo} and {hi}, got {v}")
    return float(v)


def resolve_seed(given: Any, given_source: str) -> tuple[int, str]:
    """The run's seed and where it came from: `given` (an option) > $NATS_CHAOS_SEED > random.

    The one precedence rule, for `harness run` and for plain `pytest scenarios/` alike.
    Raises ValueError, naming the source, for anything but a non-negative integer.
    """
    if given is not None:
        value, source = given, given_source
    elif os.environ.get("NATS_CHAOS_SEED"):
        value, source = os.environ["NATS_CHAOS_SEED"], "$NATS_CHAOS_SEED"
    else:
        return random.SystemRandom().randrange(1 << 31), "random"
    try:
        seed = int(value)
    except (TypeError, ValueError):
        seed = -1
    if seed < 0:
        raise ValueError(f"seed {value!r} from {source}: expected a non-negative integer")
    return seed, source
