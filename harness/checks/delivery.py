"""Delivery accounting: per consumer, no stream sequence handed to the flow twice in the same
delivery, and no delivery count that goes down.

The agent's ledger (`harness.agent.ledger`) records every JetStream delivery a Next/ack flow
was handed — stream sequence and delivery count from the message's metadata — and the
outcome event carries its summary. A repeat with a higher count is a redelivery (nak, ack
wait): expected, counted apart and put on the timeline. A repeat with the same count is a
duplicate, a lower count a decrease: both are the client's doing, with the sequences as evidence.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from harness.checks import AFTER_FLOW, Finding, Sources, check, step


@dataclasses.dataclass(frozen=True)
class ConsumerDeliveries:
    """One consumer's deliveries as the agent's ledger summarised them."""

    consumer: str
    deliveries: int
    sequences: int
    redelivered: int
    duplicates: int
    duplicate_examples: tuple[tuple[int, int], ...]  # (stream seq, delivery count)
    decreases: int
    decrease_examples: tuple[tuple[int, int, int], ...]  # (stream seq, highest count before, count now)
    forgotten: int = 0  # sequences the bounded ledger dropped (oldest first)

    @classmethod
    def from_json(cls, consumer: str, d: Mapping[str, Any]) -> "ConsumerDeliveries":
        return cls(
            consumer=consumer, deliveries=int(d["deliveries"]), sequences=int(d["sequences"]),
            redelivered=int(d["redelivered"]), duplicates=int(d["duplicates"]),
            duplicate_examples=tuple((int(a), int(b)) for a, b in d.get("duplicate_examples") or ()),
            decreases=int(d["decreases"]),
            decrease_examples=tuple((int(a), int(b), int(c)) for a, b, c in d.get("decrease_examples") or ()),
            forgotten=int(d.get("forgotten", 0)),
        )

    def totals(self) -> str:
        return (f"{self.deliveries} deliveries of {self.sequences} sequences on consumer {self.consumer}: "
                f"{self.redelivered} redelivered (expected), {self.duplicates} duplicated, {self.decreases} decreased"
                + (f", {self.forgotten} sequences forgotten by the bounded ledger" if self.forgotten else ""))


def deliveries_of(outcome: Mapping[str, Any] | None) -> tuple[ConsumerDeliveries, ...]:
    """The per-consumer ledger the flow's outcome event carries (none for flows without deliveries)."""
    led = (outcome or {}).get("deliveries") or {}
    return tuple(ConsumerDeliveries.from_json(name, d) for name, d in sorted(led.items()) if name)


def _more(shown: int, total: int) -> str:
    return f" (first {shown} shown)" if total > shown else ""


def find_duplicates(cd: ConsumerDeliveries) -> list[Finding]:
    """Stream sequences handed to the flow again with the same delivery count."""
    if not cd.duplicates:
        return []
    seqs = ", ".join(str(s) for s, _ in cd.duplicate_examples)
    return [Finding(
        "delivery",
        f"{cd.duplicates} stream sequence(s) delivered twice to consumer {cd.consumer} with the same delivery count: {seqs}"
        + _more(len(cd.duplicate_examples), cd.duplicates),
        evidence="stream seq (delivery count): " + ", ".join(f"{s} ({n})" for s, n in cd.duplicate_examples)
        + "\n" + cd.totals(),
    )]


def find_decreases(cd: ConsumerDeliveries) -> list[Finding]:
    """Stream sequences whose delivery count went down."""
    if not cd.decreases:
        return []
    seqs = ", ".join(str(s) for s, _, _ in cd.decrease_examples)
    return [Finding(
        "delivery",
        f"delivery count went down for {cd.decreases} stream sequence(s) on consumer {cd.consumer}: {seqs}"
        + _more(len(cd.decrease_examples), cd.decreases),
        evidence="stream seq: highest count before -> count now: "
        + ", ".join(f"{s}: {a} -> {b}" for s, a, b in cd.decrease_examples) + "\n" + cd.totals(),
    )]


def find_missing_after(cont: Mapping[str, Any] | None) -> list[Finding]:
    """Messages the flow published after its waiting call ended (a cancel, a deadline, its own
    timeout) that the continuing caller, with the same objects, never got."""
    if not cont or not cont.get("missing_count"):
        return []
    ended = ", ".join(f"{e['label']} ({e['how']})" for e in cont.get("ended") or ()) or "none recorded"
    n, total = int(cont["missing_count"]), int(cont.get("published", 0))
    return [Finding(
        "delivery",
        f"{n} of {total} message(s) published after the waiting call ended never reached the continuing caller: "
        + ", ".join(cont.get("missing") or ()) + _more(len(cont.get("missing") or ()), n),
        evidence=f"waiting call(s) ended: {ended}\ndelivered after it: {cont.get('delivered', 0)} of {total}",
    )]


check("delivery", "no stream sequence delivered twice to one consumer, no delivery count going down "
                  "(redeliveries counted apart); after a waiting call ended (a cancel), every message "
                  "published after it reaches the continuing caller")


@step("delivery", AFTER_FLOW, needs=("outcome",))
def after_flow(s: Sources) -> list[Finding]:
    """Judge the agent's delivery ledger; put every consumer's totals on the timeline."""
    out: list[Finding] = []
    unread = ((s.outcome or {}).get("deliveries") or {}).get("")
    if unread:  # not judged: what cannot be read says nothing about duplicates
        s.event("deliveries unreadable", count=unread["unreadable"], why=unread["why"])
    for cd in deliveries_of(s.outcome):
        s.event("deliveries", consumer=cd.consumer, deliveries=cd.deliveries, sequences=cd.sequences,
                redelivered=cd.redelivered, duplicates=cd.duplicates, decreases=cd.decreases)
        out += find_duplicates(cd) + find_decreases(cd)
    return out + find_missing_after((s.outcome or {}).get("continuation"))
