"""messages: whole data, every message, confirmed acks on the server (outcome + server view)."""

from __future__ import annotations

from checks_helpers import FakeSources, Series, consumer, run_step

from harness.checks import AFTER_FLOW
from harness.checks.messages import find_gave_up, find_integrity, find_unconfirmed_acks


def test_integrity_error_is_wrong_data() -> None:
    out = {"status": "error", "exc_type": "harness.flows.IntegrityError", "message": "object truncated"}
    (f,) = find_integrity(out)
    assert f.summary == "wrong data handed to the flow: object truncated"
    assert find_integrity({"status": "error", "exc_type": "nats.errors.TimeoutError"}) == []


def test_gave_up_carries_the_server_s_view_of_the_consumer() -> None:
    out = {"status": "error", "exc_type": "harness.flows.FlowGaveUp", "message": "gave up at its deadline with 9 of 10 messages"}
    (f,) = find_gave_up(out, consumer("c", num_ack_pending=0))
    assert f.summary == "the flow gave up at its deadline with 9 of 10 messages"
    assert "num_ack_pending=0" in f.evidence
    assert "no durable consumer" in find_gave_up(out, None)[0].evidence


def test_confirmed_acks_still_pending_on_the_server() -> None:
    ok = {"status": "ok", "result": {"confirmed": 5}}
    (f,) = find_unconfirmed_acks(ok, consumer("c", num_ack_pending=2))
    assert f.summary == "ack_sync confirmed 5 message(s) but the server has 2 ack-pending"
    assert find_unconfirmed_acks(ok, consumer("c")) == []
    assert find_unconfirmed_acks({"status": "ok", "result": {"confirmed": 0}}, consumer("c", num_ack_pending=2)) == []


def test_step_asks_the_server_about_the_flow_s_durable() -> None:
    s = FakeSources(outcome={"status": "ok", "result": {"confirmed": 1}}, consumer_name="c_1",
                    consumer_reads=Series({"c_1": consumer("c_1", num_ack_pending=1), "other": consumer("other")}))
    (f,) = run_step("messages", AFTER_FLOW, s)
    assert "1 ack-pending" in f.summary
