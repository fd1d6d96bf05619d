"""The agent's delivery ledger: which stream sequences each consumer handed to the flow, and
with which delivery count (delivery accounting).

It runs inside the agent (stdlib only: the agent imports nothing but the client under test)
and must not grow with a long flow: per consumer it keeps at most `LIMIT` sequences (the
oldest are forgotten, and counted) and at most `SHOWN` examples of each anomaly.

Per repeat of a sequence on one consumer, with `prev` the highest delivery count seen so far:
- count > prev: a *redelivery* (nak, ack wait, in_progress expiry): expected, counted apart;
- count == prev: a *duplicate*: the same delivery handed to the flow twice;
- count < prev: a *decrease*: a delivery count that went down.
"""

from __future__ import annotations

from typing import Any

LIMIT = 10_000  # sequences remembered per consumer
SHOWN = 20  # examples kept per anomaly and consumer (the counts go on)


class _Consumer:
    __slots__ = ("seen", "deliveries", "redelivered", "duplicates", "decreases", "dup_examples", "dec_examples", "forgotten")

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}  # stream seq -> highest delivery count; insertion order ~ seq order
        self.deliveries = self.redelivered = self.duplicates = self.decreases = self.forgotten = 0
        self.dup_examples: list[list[int]] = []  # [seq, count]
        self.dec_examples: list[list[int]] = []  # [seq, highest before, now]


class DeliveryLedger:
    """Record every delivery the flow was handed; summarise per consumer for the outcome event."""

    def __init__(self, limit: int = LIMIT, shown: int = SHOWN) -> None:
        self.limit, self.shown = limit, shown
        self._by_consumer: dict[str, _Consumer] = {}
        self._unreadable = 0
        self._unreadable_example = ""

    def record(self, consumer: str, stream_seq: int, count: int) -> None:
        c = self._by_consumer.get(consumer)
        if c is None:
            c = self._by_consumer[consumer] = _Consumer()
        c.deliveries += 1
        prev = c.seen.get(stream_seq)
        if prev is None:
            c.seen[stream_seq] = count
            if len(c.seen) > self.limit:
                del c.seen[next(iter(c.seen))]
                c.forgotten += 1
        elif count > prev:
            c.redelivered += 1
            c.seen[stream_seq] = count
        elif count == prev:
            c.duplicates += 1
            if len(c.dup_examples) < self.shown:
                c.dup_examples.append([stream_seq, count])
        else:
            c.decreases += 1
            if len(c.dec_examples) < self.shown:
                c.dec_examples.append([stream_seq, prev, count])

    def unreadable(self, why: str) -> None:
        """A delivery whose metadata could not be read (counted, with the first reason)."""
        self._unreadable += 1
        self._unreadable_example = self._unreadable_example or why[:200]

    def __bool__(self) -> bool:
        return bool(self._by_consumer) or bool(self._unreadable)

    def summary(self) -> dict[str, Any]:
        """Per consumer: deliveries, distinct sequences, redelivered, duplicates, decreases, examples
        (and, under the key "", deliveries whose metadata could not be read)."""
        out = {
            name: {
                "deliveries": c.deliveries, "sequences": len(c.seen) + c.forgotten, "redelivered": c.redelivered,
                "duplicates": c.duplicates, "duplicate_examples": c.dup_examples,
                "decreases": c.decreases, "decrease_examples": c.dec_examples, "forgotten": c.forgotten,
            }
            for name, c in self._by_consumer.items()
        }
        if self._unreadable:
            out[""] = {"unreadable": self._unreadable, "why": self._unreadable_example}
        return out


class Continuation:
    """What a flow did with the same objects after its waiting call ended (the cancel family's
    judged half): how that call ended, the message ids published after it, those the continuing
    caller got, and each next call's time against its own timeout. Bounded like the ledger."""

    def __init__(self, shown: int = SHOWN) -> None:
        self.shown = shown
        self.ended: list[dict[str, Any]] = []  # how each waiting call ended: {label, how, took}
        self.published: list[str] = []
        self.got: set[str] = set()
        self.calls = 0
        self.overran: list[dict[str, Any]] = []  # next calls that took longer than their own timeout

    def waited(self, label: str, how: str, took: float, after_cancel: float | None = None) -> None:
        """The waiting call ended: `cancelled` (the task), `deadline` (the caller's timeout),
        `timeout` (its own), `value` (it returned); `after_cancel`: seconds from the moment the
        caller gave up (the cancel, the deadline firing) to the call's end."""
        if len(self.ended) < LIMIT:
            e = {"label": label, "how": how, "took": round(took, 4)}
            if after_cancel is not None:
                e["after_cancel"] = round(max(after_cancel, 0.0), 4)
            self.ended.append(e)

    def publish(self, ids: list[str]) -> None:
        self.published += ids[: max(LIMIT - len(self.published), 0)]

    def received(self, msg_id: str) -> None:
        if msg_id in self.published:
            self.got.add(msg_id)

    def missing(self) -> list[str]:
        return [i for i in self.published if i not in self.got]

    def call(self, label: str, took: float, timeout: float) -> None:
        """One next call with the same objects and its own timeout (the client's bound on it)."""
        self.calls += 1
        if took > timeout and len(self.overran) < self.shown:
            self.overran.append({"label": label, "took": round(took, 4), "timeout": timeout})

    def __bool__(self) -> bool:
        return bool(self.ended or self.published or self.calls)

    def summary(self) -> dict[str, Any]:
        missing = self.missing()
        return {"ended": self.ended[: self.shown], "published": len(self.published), "delivered": len(self.got),
                "missing": missing[: self.shown], "missing_count": len(missing), "calls": self.calls,
                "overran": self.overran}
