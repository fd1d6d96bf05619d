"""subscriptions: left after the flow, except the connection's request inbox."""

from __future__ import annotations

from checks_helpers import FakeSources, Series, run_step, snap

from harness.agent.snapshot import SubInfo
from harness.checks import AFTER_FLOW, Baseline
from harness.checks.subscriptions import find_leftover_subscriptions


def sub(sid: int, subject: str) -> SubInfo:
    return SubInfo(sid=sid, subject=subject, queue="", pending_msgs=2, closed=False)


def test_a_new_subscription_is_left_over_with_its_subject_and_pending() -> None:
    (f,) = find_leftover_subscriptions(snap(subs=(sub(4, "chaos.x.>"),)), set(), "after the flow")
    assert f.summary == "subscription sid 4 on chaos.x.> left (after the flow)"
    assert "pending_msgs=2" in f.evidence


def test_baseline_and_request_inbox_are_not_left_over() -> None:
    s = snap(subs=(sub(1, "chaos.old"), sub(2, "_INBOX.abc.*")))
    assert find_leftover_subscriptions(s, {1}, "after the flow") == []
    # an inbox that is not the shared request inbox is the flow's
    assert len(find_leftover_subscriptions(snap(subs=(sub(3, "_INBOX.abc.def"),)), set(), "p")) == 1


def test_step_reads_the_baseline_sids() -> None:
    s = FakeSources(baseline=Baseline(sids=frozenset({1})), snapshots=Series(snap(subs=(sub(1, "a"), sub(2, "b")))))
    (f,) = run_step("subscriptions", AFTER_FLOW, s)
    assert "sid 2" in f.summary
