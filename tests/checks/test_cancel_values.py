"""The cancel family's pure parts on hand-built values: the fault's evidence, the agent's
continuation record, and the findings the delivery and iterators checks make of it."""

from __future__ import annotations

from harness.agent.ledger import Continuation
from harness.checks.delivery import find_missing_after
from harness.checks.iterators import find_cancel_ignored, find_overran
from harness.faults.cancel import cancel_evidence


def _ended(how: str, label: str = "next_msg") -> dict:
    return {"ev": "waiting call ended", "label": label, "how": how, "took": 0.1}


def test_evidence_needs_a_call_that_ended_with_a_cancellation() -> None:
    issued = [{"ev": "cancel issued", "label": "next_msg"}]
    assert cancel_evidence(issued, [_ended("cancelled")], 1, True)[0]
    assert cancel_evidence(issued, [_ended("deadline")], 1, True)[0]


def test_no_waiting_call_or_a_call_that_returned_first_is_inconclusive() -> None:
    ok, text = cancel_evidence([], [], 1, True)
    assert not ok and "no waiting call" in text
    ok, text = cancel_evidence([{"label": "fetch"}], [_ended("value", "fetch")], 1, True)
    assert not ok and "ended by value before the cancel took effect" in text


def test_a_cancelled_call_that_never_ended_is_evidence_the_iterators_check_judges() -> None:
    ok, text = cancel_evidence([{"label": "next_msg"}], [], 1, False)
    assert ok and "never ended" in text


def test_repeat_needs_every_cancel() -> None:
    issued = [{"label": "x"}] * 3
    assert cancel_evidence(issued, [_ended("cancelled")] * 3, 3, True)[0]
    ok, text = cancel_evidence(issued[:2], [_ended("cancelled")] * 2, 3, True)
    assert not ok and "2 of 3" in text


def test_continuation_counts_what_the_continuing_caller_missed() -> None:
    c = Continuation()
    assert not c
    c.waited("next_msg", "cancelled", 0.2)
    c.publish(["after-0", "after-1", "after-2"])
    c.received("after-1")
    c.received("someone-else")  # not published after the cancel: not counted
    s = c.summary()
    assert s["missing"] == ["after-0", "after-2"] and s["missing_count"] == 2 and s["delivered"] == 1
    (f,) = find_missing_after(s)
    assert f.check == "delivery" and "2 of 3 message(s) published after the waiting call ended" in f.summary
    assert "next_msg (cancelled)" in f.evidence
    for i in ("after-0", "after-2"):
        c.received(i)
    assert find_missing_after(c.summary()) == [] and find_missing_after(None) == []


def test_a_next_call_is_held_to_its_own_timeout_plus_the_bound() -> None:
    c = Continuation()
    c.call("next_msg", 0.5, 1.0)
    c.call("fetch", 2.0, 1.0)  # over its timeout, within the bound: recorded, not judged
    c.call("fetch", 5.0, 1.0)
    s = c.summary()
    assert s["calls"] == 3 and [o["took"] for o in s["overran"]] == [2.0, 5.0]
    (f,) = find_overran(s, bound=3.0)
    assert f.check == "iterators" and "fetch after the waiting call ended took 5.0s, past its own timeout of 1.0s" in f.summary


def test_a_cancelled_call_must_end_within_the_bound_of_the_caller_giving_up() -> None:
    c = Continuation()
    c.waited("objectstore.get", "cancelled", 10.0, after_cancel=9.5)
    c.waited("next_msg", "deadline", 0.4, after_cancel=0.01)
    c.waited("fetch", "timeout", 2.0)  # its own timeout: nobody gave up on it
    (f,) = find_cancel_ignored(c.summary(), bound=3.0)
    assert f.check == "iterators" and "objectstore.get ended 9.5s after the caller gave up (cancelled), not within 3.0s" in f.summary
    assert find_cancel_ignored(None, 3.0) == []
