"""consumers: kept alive (push-bound, waiting pulls, no threshold) or surviving their threshold."""

from __future__ import annotations

from checks_helpers import FakeSources, Series, consumer, run_step

from harness.checks import AFTER_CLOSE, AFTER_FLOW, Baseline
from harness.checks.consumers import classify, find_leftover_consumers, find_unreaped


def test_classification_of_a_consumer_kept_alive() -> None:
    assert classify(consumer("a", push_bound=True), client_open=True) == "still push-bound (live interest) after the flow ended"
    assert classify(consumer("a", push_bound=True), client_open=False) == "still push-bound after the client closed"
    assert "waiting pull" in classify(consumer("a", num_waiting=2), client_open=False)
    assert classify(consumer("a", num_waiting=2), client_open=True) is None  # a pull may wait while the client is open
    assert "no inactive threshold" in classify(consumer("a", inactive_threshold=None), client_open=True)
    assert classify(consumer("a"), client_open=True) is None  # on its way out


def test_baseline_consumers_are_never_reported() -> None:
    now = {"mine": consumer("mine", push_bound=True), "prepared": consumer("prepared", inactive_threshold=None)}
    (f,) = find_leftover_consumers(now, {"prepared"}, True, "after the flow")
    assert f.summary.startswith("consumer mine kept alive (after the flow)") and "push_bound=True" in f.evidence


def test_unreaped_names_the_threshold_and_the_server_record() -> None:
    left = {"e": consumer("e", inactive_threshold=2.0)}
    (f,) = find_unreaped(left, {"e": consumer("e", inactive_threshold=2.0)})
    assert "survived its inactive threshold (2.0s)" in f.summary
    assert find_unreaped(left, {}) == []


def test_step_after_the_flow_settles_a_late_unsub() -> None:
    s = FakeSources(consumer_reads=Series({"x": consumer("x", push_bound=True)}, {"x": consumer("x")}))
    assert run_step("consumers", AFTER_FLOW, s) == []


def test_step_after_close_waits_for_reaping_and_reports_a_survivor() -> None:
    short = consumer("eph", inactive_threshold=0.1)
    s = FakeSources(consumer_reads=Series({"eph": short}))  # never goes away
    (f,) = run_step("consumers", AFTER_CLOSE, s)
    assert "survived its inactive threshold" in f.summary and s.inherent > 0
    reaped = FakeSources(consumer_reads=Series({"eph": short}, {"eph": short}, {}))
    assert run_step("consumers", AFTER_CLOSE, reaped) == []
    assert ("consumer reaped", {"name": "eph"}) in reaped.events


def test_step_after_close_does_not_wait_past_the_consumer_wait() -> None:
    s = FakeSources(consumer_wait=1.0, consumer_reads=Series({"eph": consumer("eph", inactive_threshold=30.0)}),
                    baseline=Baseline())
    assert run_step("consumers", AFTER_CLOSE, s) == []
    assert s.events[0][0] == "consumers not waited for"
