"""iterators: what the runner saw as the flow ended (FlowEnd), judged on values."""

from __future__ import annotations

from checks_helpers import FakeSources, run_step, snap, task

from harness.agent.snapshot import PendingCall
from harness.checks import AFTER_CLOSE, AFTER_FLOW
from harness.checks.iterators import FlowEnd, find_stuck_calls, is_spin, stuck_kind


def test_a_pending_call_is_stuck_with_its_task_s_stack_and_kind() -> None:
    s = snap((task(11, "Sub.next_msg"),), pending=(PendingCall("next_msg", 4.2, 11),))
    (f,) = find_stuck_calls(s, 0.01, "the terminal event")
    assert f.summary == "next_msg still pending 4.2s, not resolved after the terminal event: lost wake-up (idle CPU)"
    assert "m.py:1 in Sub.next_msg" in f.evidence


def test_spin_threshold() -> None:
    assert is_spin(0.2) and not is_spin(0.19)
    assert stuck_kind(0.9) == "spin (busy CPU)"


def test_no_tracked_call_still_reports_with_the_fallback_stack() -> None:
    (f,) = find_stuck_calls(snap(), 0.0, "the flow's deadline", fallback_stack="task X:\n  here")
    assert f.summary.startswith("(no tracked call) still pending") and "here" in f.evidence


def test_a_clean_end_has_no_findings() -> None:
    s = FakeSources()
    assert run_step("iterators", AFTER_FLOW, s) == [] and run_step("iterators", AFTER_CLOSE, s) == []


def test_each_recorded_hang_is_one_finding_with_evidence() -> None:
    end = FlowEnd(stuck=snap(pending=(PendingCall("fetch", 3.0, 0),)), stuck_after="the terminal event",
                  hung_finish="agent did not answer 'finish'", hung_finish_stacks="stk1",
                  unfinished_action="nc_drain", action_stacks="stk2", bound=1.5)
    got = run_step("iterators", AFTER_FLOW, FakeSources(flow_end=end))
    assert [f.summary.split(" ")[0] for f in got] == ["fetch", "the", "nc_drain"]
    assert got[1].summary == "the flow's terminal action did not return within 1.5s" and "stk1" in got[1].evidence
    assert got[2].summary == "nc_drain did not return within 1.5s of the terminal event" and got[2].evidence == "stk2"


def test_unresponsive_agent_and_failed_close() -> None:
    got = run_step("iterators", AFTER_FLOW, FakeSources(flow_end=FlowEnd(unresponsive="no heartbeat")))
    assert got[0].summary == "the flow did not end by its deadline and the agent stopped answering (no heartbeat)"
    (f,) = run_step("iterators", AFTER_CLOSE, FakeSources(flow_end=FlowEnd(close_error="timed out", close_stacks="s")))
    assert f.summary == "nc.close() did not complete: timed out" and f.evidence == "s"


def test_a_call_still_pending_after_the_heal_is_judged_again() -> None:
    # Judged once while the fault held (a close under a stall), then once more with it gone:
    # a publisher that close() never released (KI-017).
    end = FlowEnd(stuck=snap(pending=(PendingCall("publish", 4.5, 0),)), stuck_after="the terminal event",
                  after_heal=snap((task(7, "Client._flush_pending"),), pending=(PendingCall("publish", 9.0, 7),)), bound=3.0)
    got = run_step("iterators", AFTER_FLOW, FakeSources(flow_end=end))
    assert [f.summary for f in got] == [
        "publish still pending 4.5s, not resolved after the terminal event: lost wake-up (idle CPU)",
        "publish still pending 9.0s, not resolved after the heal (the fault gone): lost wake-up (idle CPU)",
    ]
    assert "Client._flush_pending" in got[1].evidence
