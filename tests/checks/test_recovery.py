"""recovery: after heal the same connection answers, or it is a zombie / not reconnected."""

from __future__ import annotations

from checks_helpers import CLOSED, OPEN, FakeSources, Series, run_step, snap

from harness.checks import AFTER_FLOW, ProbeFailed


def test_a_probe_that_answers_is_recovery() -> None:
    s = FakeSources(probes=Series(ProbeFailed("timeout"), {"rtt": 0.002}))
    assert run_step("recovery", AFTER_FLOW, s) == []
    assert s.events[0][0] == "recovered" and s.events[0][1]["rtt"] == 0.002


def test_connected_but_silent_is_a_zombie() -> None:
    s = FakeSources(probes=Series(ProbeFailed("agent refused 'probe': TimeoutError")), snapshots=Series(snap(conn=OPEN)))
    (f,) = run_step("recovery", AFTER_FLOW, s)
    assert f.summary.startswith("zombie: says connected but did not serve a request")
    assert "TimeoutError" in f.evidence and s.inherent > 0


def test_not_reconnected_is_not_called_a_zombie() -> None:
    s = FakeSources(probes=Series(ProbeFailed("x")), snapshots=Series(snap(conn=CLOSED)))
    (f,) = run_step("recovery", AFTER_FLOW, s)
    assert f.summary.startswith("connection did not serve a request")


def test_not_probed_without_a_fault_or_after_a_closing_fault() -> None:
    never = Series(AssertionError("probed"))
    assert run_step("recovery", AFTER_FLOW, FakeSources(faulted=False, probes=never)) == []
    assert run_step("recovery", AFTER_FLOW, FakeSources(client_open=False, probes=never)) == []
