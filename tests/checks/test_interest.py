"""interest: an interest stream empty once every consumer acked everything (values built here)."""

from __future__ import annotations

from checks_helpers import FakeSources, Series, consumer, run_step

from harness.checks import AFTER_FLOW
from harness.checks.interest import all_acked, find_kept


def stream(messages: int, last: int = 100, retention: str = "interest") -> dict:
    return {"name": "S", "retention": retention, "messages": messages, "first_seq": last - messages + 1 if messages else last + 1,
            "last_seq": last, "num_deleted": 0}


def acked(name: str, floor: int = 100, pending: int = 0, ack_pending: int = 0) -> dict:
    return {**consumer(name, num_ack_pending=ack_pending), "num_pending": pending, "ack_floor_stream_seq": floor,
            "delivered_stream_seq": floor, "num_redelivered": 3}


def test_all_acked_needs_every_consumer_at_the_last_sequence_with_nothing_pending() -> None:
    assert all_acked(stream(0), {"a": acked("a"), "b": acked("b")})
    assert not all_acked(stream(0), {"a": acked("a"), "b": acked("b", floor=99)})
    assert not all_acked(stream(0), {"a": acked("a", pending=1)})
    assert not all_acked(stream(0), {"a": acked("a", ack_pending=1)})
    assert not all_acked(stream(0), {})


def test_messages_kept_after_every_ack_are_a_finding_with_floors() -> None:
    (f,) = find_kept(stream(3), {"a": acked("a"), "b": acked("b")}, 5.0, jsz_messages=3)
    assert f.summary == "interest stream S keeps 3 message(s) 5.0s after every consumer (2) acked all 100"
    assert "first_seq=98" in f.evidence and "/jsz messages=3" in f.evidence and "b: ack_floor=100" in f.evidence
    assert find_kept(stream(0), {"a": acked("a")}, 0.0) == []


def test_step_waits_for_the_server_to_drop_the_last_messages() -> None:
    s = FakeSources(streams=Series(stream(2), stream(2), stream(0)), consumer_reads=Series({"a": acked("a")}))
    assert run_step("interest", AFTER_FLOW, s) == []
    assert s.events[-1][0] == "interest: stream empty"


def test_step_reports_what_is_kept_past_the_bound() -> None:
    s = FakeSources(interest_bound=0.3, streams=Series(stream(4)), consumer_reads=Series({"a": acked("a")}))
    (f,) = run_step("interest", AFTER_FLOW, s)
    assert "keeps 4 message(s)" in f.summary and s.inherent >= 0.3


def test_step_does_not_judge_other_streams_or_unfinished_consumers() -> None:
    assert run_step("interest", AFTER_FLOW, FakeSources(streams=Series(None))) == []
    assert run_step("interest", AFTER_FLOW, FakeSources(streams=Series(stream(4, retention="limits")))) == []
    unfinished = FakeSources(streams=Series(stream(4)), consumer_reads=Series({"a": acked("a", floor=96)}))
    assert run_step("interest", AFTER_FLOW, unfinished) == []
    assert unfinished.events[0][0] == "interest: not every consumer acked everything"
