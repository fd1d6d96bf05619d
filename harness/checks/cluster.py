"""Checks that see the whole cluster: every node's own copy of the flow's stream.

On one server these steps do nothing (`Sources.copies()` is None). On a cluster each node's
`/jsz?streams=true&consumers=true` says what that node holds; the JetStream API (answered
by the stream's leader and the meta leader) says what the cluster as a whole believes.
A node catching up after a fault is normal, so every judgement is made once the cluster
has settled: the step polls until the copies agree or `REPLICA_BOUND` passes, and reports
what still disagrees then, with every node's figures as evidence.

- `replicas`: the copies agree — message count, first and last sequence, and each
  consumer's ack floor — on every node that should hold one (the stream's replica count);
- `replica_consumers`: no consumer the scenario created is kept alive on any node, asked of
  every node and of the meta leader (a consumer one node still holds after the cluster
  dropped it is named with the node);
- `replica_interest`: an interest-retention stream whose consumers acked everything is
  empty on every replica, not only through its leader;
- `accounting`: across a leader change, the flow's durable consumer's acknowledgements on
  the server cover no more than the client was handed: with every message acked on the
  server (ack floor at the stream's last sequence), the client's delivery ledger must hold
  every sequence from the first to the last.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from harness.checks import AFTER_CLOSE, AFTER_FLOW, Finding, Sources, check, step
from harness.checks.consumers import classify
from harness.checks.delivery import deliveries_of

REPLICA_BOUND = 5.0  # seconds the replicas get, after the flow and the heal, to agree

Copies = Mapping[str, "Mapping[str, Any] | None"]


def _fmt_copy(node: str, c: Mapping[str, Any] | None) -> str:
    if c is None:
        return f"  {node}: no copy (or no answer)"
    floors = ", ".join(f"{n} ack_floor={x['ack_floor']} delivered={x['delivered']}" for n, x in sorted(c["consumers"].items()))
    return (f"  {node}: messages={c['messages']} first_seq={c['first_seq']} last_seq={c['last_seq']}"
            f" leader={c.get('leader') or '?'}" + (f"; {floors}" if floors else ""))


def evidence_of(copies: Copies) -> str:
    return "every node's /jsz:\n" + "\n".join(_fmt_copy(n, c) for n, c in sorted(copies.items()))


# -- replicas agree ----------------------------------------------------------------------


def find_diverged(stream: str, copies: Copies, replicas: int) -> list[Finding]:
    """Where the nodes' copies of `stream` disagree, or fewer nodes than `replicas` hold one."""
    held = {n: c for n, c in copies.items() if c is not None}
    out: list[Finding] = []
    if len(held) < replicas:
        missing = sorted(n for n, c in copies.items() if c is None)
        out.append(Finding("replicas", f"stream {stream} has {len(held)} of its {replicas} replicas; no copy on "
                                       f"{', '.join(missing)}", evidence=evidence_of(copies)))
    if len(held) < 2:
        return out
    for field in ("messages", "first_seq", "last_seq"):
        values = {n: c[field] for n, c in held.items()}
        if len(set(values.values())) > 1:
            out.append(Finding("replicas", f"stream {stream}'s replicas disagree on {field}: "
                                           + ", ".join(f"{n}={v}" for n, v in sorted(values.items())),
                               evidence=evidence_of(copies)))
    names = set().union(*(c["consumers"] for c in held.values()))
    for name in sorted(names):
        floors = {n: (c["consumers"][name]["ack_floor"] if name in c["consumers"] else None) for n, c in held.items()}
        if len(set(floors.values())) > 1:
            out.append(Finding("replicas", f"consumer {name}'s replicas disagree on its ack floor: "
                                           + ", ".join(f"{n}={'none' if v is None else v}" for n, v in sorted(floors.items())),
                               evidence=evidence_of(copies)))
    return out


check("replicas", f"on a cluster, every replica of the flow's stream agrees (messages, first/last sequence, consumer "
                  f"ack floors) within {REPLICA_BOUND:.0f}s after the flow and the heal")


def _settled_copies(s: Sources, judge: Any, bound: float, first: Copies | None = None) -> list[Finding]:
    """Poll the copies until `judge(copies)` finds nothing or `bound` passes (inherent waiting);
    `first` is a reading already made (each reading asks every node)."""
    t = time.monotonic()
    found = judge(first if first is not None else s.copies())
    while found and time.monotonic() - t < bound:
        time.sleep(0.1)
        found = judge(s.copies())
    if found:
        s.add_inherent(time.monotonic() - t)
    return found


@step("replicas", AFTER_CLOSE, needs=("cluster",))
def replicas_after_close(s: Sources) -> list[Finding]:
    """After close (nothing more will be acked): the copies agree once settled."""
    copies = s.copies()
    if copies is None:
        return []
    stream = s.stream()
    if stream is None:
        return []
    replicas = int(stream.get("replicas", 1))
    if replicas < 2:
        return []
    found = _settled_copies(s, lambda c: find_diverged(stream["name"], c, replicas), REPLICA_BOUND, first=copies)
    if not found:
        s.event("replicas agree", stream=stream["name"], replicas=replicas)
    return found


# -- consumers on every node ---------------------------------------------------------------


def find_left_on_nodes(copies: Copies, api: Mapping[str, Mapping[str, Any]], baseline: set[str]) -> list[Finding]:
    """Consumers (not in `baseline`) kept alive on any node after close, or held by a node
    while the cluster (the API, i.e. the meta leader) no longer lists them."""
    out: list[Finding] = []
    on: dict[str, dict[str, Mapping[str, Any]]] = {}
    for node, c in sorted(copies.items()):
        for name, cd in (c or {}).get("consumers", {}).items():
            if name not in baseline:
                on.setdefault(name, {})[node] = cd
    for name, nodes in sorted(on.items()):
        where = ", ".join(sorted(nodes))
        ev = "\n".join(f"  {n}: " + ", ".join(f"{k}={v}" for k, v in sorted(cd.items())) for n, cd in sorted(nodes.items()))
        if name not in api:
            out.append(Finding("replica_consumers", f"consumer {name} is gone from the cluster's listing but still held on {where}",
                               evidence=f"meta leader (JetStream API) lists: {', '.join(sorted(api)) or 'none'}\n{ev}"))
            continue
        why = next((w for w in (classify({**cd, "num_waiting": cd.get("num_waiting", 0)}, False) for cd in nodes.values()) if w), None)
        if why:
            out.append(Finding("replica_consumers", f"consumer {name} kept alive on {where} after close: {why}", evidence=ev))
    return out


check("replica_consumers", "on a cluster, no consumer the scenario created is kept alive on any node after close "
                           "(asked of every node and of the meta leader)")


@step("replica_consumers", AFTER_CLOSE, needs=("cluster", "observer"))
def consumers_after_close(s: Sources) -> list[Finding]:
    """Settled within the leak grace, like the `consumers` check, on every node."""
    first = [s.copies()]
    if first[0] is None:
        return []
    base = set(s.baseline.consumers)

    def probe() -> list[Finding]:
        copies = first.pop() if first else s.copies()  # the reading made above serves the first probe
        return find_left_on_nodes(copies, s.consumers(), base)

    return s.settled(probe)


# -- interest retention on every replica -------------------------------------------------------


def find_kept_on_replicas(stream: str, copies: Copies, waited: float) -> list[Finding]:
    kept = {n: c["messages"] for n, c in copies.items() if c is not None and c["messages"]}
    if not kept:
        return []
    return [Finding("replica_interest",
                    f"interest stream {stream} still keeps messages on {', '.join(f'{n} ({m})' for n, m in sorted(kept.items()))} "
                    f"{waited:.1f}s after every consumer acked all",
                    evidence=evidence_of(copies))]


check("replica_interest", "on a cluster, an interest-retention stream is empty on every replica once every consumer "
                          "acked every message")


@step("replica_interest", AFTER_FLOW, needs=("cluster", "observer"))
def interest_after_flow(s: Sources) -> list[Finding]:
    """Once the cluster says every consumer is done, every node's copy must empty."""
    from harness.checks.interest import all_acked

    stream = s.stream()
    if stream is None or stream["retention"] != "interest":
        return []
    copies = s.copies()
    if copies is None or not all_acked(stream, s.consumers()):
        return []
    t = time.monotonic()
    found = _settled_copies(s, lambda c: find_kept_on_replicas(stream["name"], c, time.monotonic() - t), s.interest_bound,
                            first=copies)
    if not found:
        s.event("interest: empty on every replica", stream=stream["name"])
    return found


# -- accounting across a leader change ---------------------------------------------------------


def find_acked_unseen(consumer: str, handed: int, server: Mapping[str, Any] | None, first_seq: int) -> list[Finding]:
    """The server counts every message of the consumer acked (ack floor at the stream's last
    sequence, nothing pending), yet the client's ledger was handed fewer distinct sequences."""
    if server is None:
        return []
    floor, pending = server["ack_floor_stream_seq"], server["num_pending"] + server["num_ack_pending"]
    want = floor - first_seq + 1
    if pending or floor < first_seq or handed >= want:
        return []
    return [Finding("accounting", f"consumer {consumer}: the server counts {want} message(s) acked (ack floor {floor}), "
                                  f"but the client was handed only {handed} distinct sequence(s)",
                    evidence=", ".join(f"{k}={v}" for k, v in sorted(server.items())))]


check("accounting", "on a cluster, the flow's durable consumer has no message acked on the server that the client "
                    "was never handed (judged against the stream after the cluster settles)")


@step("accounting", AFTER_CLOSE, needs=("cluster", "observer", "outcome"))
def accounting_after_close(s: Sources) -> list[Finding]:
    """The flow's own durable (the observer's, from the stream's first sequence) only."""
    if not s.outcome or s.outcome.get("status") != "ok":
        return []
    ledger = {cd.consumer: cd for cd in deliveries_of(s.outcome)}
    cd = ledger.get(s.consumer_name)
    if cd is None or cd.forgotten or not s.on_cluster:
        return []
    return s.settled(lambda: find_acked_unseen(cd.consumer, cd.sequences, s.consumers().get(s.consumer_name), 1),
                     grace=REPLICA_BOUND)
