"""delivery: the agent's bounded ledger and the check judging its summary (values built here)."""

from __future__ import annotations

from checks_helpers import FakeSources, run_step

from harness.agent.ledger import DeliveryLedger
from harness.checks import AFTER_FLOW
from harness.checks.delivery import ConsumerDeliveries, deliveries_of, find_decreases, find_duplicates


def ledger(*deliveries: tuple[str, int, int], limit: int = 100, shown: int = 20) -> dict:
    led = DeliveryLedger(limit=limit, shown=shown)
    for consumer, seq, count in deliveries:
        led.record(consumer, seq, count)
    return led.summary()


def test_redeliveries_with_a_higher_count_are_expected_and_counted_apart() -> None:
    c = ledger(("c", 1, 1), ("c", 2, 1), ("c", 1, 2), ("c", 1, 3))["c"]
    assert (c["deliveries"], c["sequences"], c["redelivered"], c["duplicates"], c["decreases"]) == (4, 2, 2, 0, 0)


def test_the_same_delivery_twice_is_a_duplicate_and_a_lower_count_a_decrease() -> None:
    c = ledger(("c", 5, 1), ("c", 5, 2), ("c", 5, 2), ("c", 5, 1))["c"]
    assert c["duplicates"] == 1 and c["duplicate_examples"] == [[5, 2]]
    assert c["decreases"] == 1 and c["decrease_examples"] == [[5, 2, 1]]


def test_the_same_sequence_on_two_consumers_is_not_a_duplicate() -> None:
    s = ledger(("a", 1, 1), ("b", 1, 1))
    assert s["a"]["duplicates"] == s["b"]["duplicates"] == 0


def test_the_ledger_is_bounded_and_says_what_it_forgot() -> None:
    led = DeliveryLedger(limit=10, shown=3)
    for seq in range(1, 1001):
        led.record("c", seq, 1)
        led.record("c", seq, 1)
    c = led.summary()["c"]
    assert len(led._by_consumer["c"].seen) == 10 and c["forgotten"] == 990 and c["sequences"] == 1000
    assert c["duplicates"] == 1000 and len(c["duplicate_examples"]) == 3


def test_findings_name_the_consumer_and_the_sequences() -> None:
    (cd,) = deliveries_of({"deliveries": ledger(("c_1", 3, 1), ("c_1", 3, 1), ("c_1", 4, 2), ("c_1", 4, 1))})
    (dup,) = find_duplicates(cd)
    assert dup.summary == "1 stream sequence(s) delivered twice to consumer c_1 with the same delivery count: 3"
    assert "3 (1)" in dup.evidence and "0 redelivered (expected)" in dup.evidence
    (dec,) = find_decreases(cd)
    assert dec.summary == "delivery count went down for 1 stream sequence(s) on consumer c_1: 4"
    assert "4: 2 -> 1" in dec.evidence


def test_more_anomalies_than_examples_says_so() -> None:
    cd = ConsumerDeliveries("c", 30, 10, 0, 25, tuple((i, 1) for i in range(20)), 0, ())
    assert find_duplicates(cd)[0].summary.endswith("(first 20 shown)")


def test_step_puts_totals_on_the_timeline_and_passes_a_clean_ledger() -> None:
    s = FakeSources(outcome={"status": "ok", "deliveries": ledger(("c", 1, 1), ("c", 1, 2))})
    assert run_step("delivery", AFTER_FLOW, s) == []
    assert s.events == [("deliveries", {"consumer": "c", "deliveries": 2, "sequences": 1, "redelivered": 1,
                                         "duplicates": 0, "decreases": 0})]


def test_step_without_a_ledger_or_an_outcome_finds_nothing() -> None:
    assert run_step("delivery", AFTER_FLOW, FakeSources(outcome=None)) == []
    assert run_step("delivery", AFTER_FLOW, FakeSources(outcome={"status": "ok", "result": {}})) == []


def test_unreadable_metadata_is_counted_apart_and_never_judged() -> None:
    led = DeliveryLedger()
    led.unreadable("IndexError: list index out of range")
    led.unreadable("IndexError: again")
    led.record("c", 1, 1)
    summary = led.summary()
    assert summary[""] == {"unreadable": 2, "why": "IndexError: list index out of range"}
    s = FakeSources(outcome={"status": "ok", "deliveries": summary})
    assert run_step("delivery", AFTER_FLOW, s) == []
    assert s.events[0] == ("deliveries unreadable", {"count": 2, "why": "IndexError: list index out of range"})
    assert [c.consumer for c in deliveries_of({"deliveries": summary})] == ["c"]


def test_the_flow_context_never_fails_a_flow_over_accounting() -> None:
    from types import SimpleNamespace

    from harness.agent.context import FlowContext

    ctx = FlowContext.__new__(FlowContext)  # only the ledger is needed here
    ctx.ledger = DeliveryLedger()
    ctx.delivered(SimpleNamespace(metadata=SimpleNamespace(consumer="c", sequence=SimpleNamespace(stream=3), num_delivered=1)))

    class NoMeta:
        @property
        def metadata(self):  # noqa: ANN201
            raise ValueError("not a JetStream message")

    ctx.delivered(NoMeta())
    assert ctx.ledger.summary()["c"]["deliveries"] == 1 and ctx.ledger.summary()[""]["unreadable"] == 1
