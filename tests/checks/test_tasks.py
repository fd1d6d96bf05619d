"""tasks: new, pending, not explained by a named ignore rule (values built here)."""

from __future__ import annotations

from checks_helpers import CLOSED, OPEN, FakeSources, Series, run_step, snap, task

from harness.checks import AFTER_CLOSE, AFTER_FLOW, Baseline
from harness.checks.tasks import find_leaked_tasks


def test_a_new_pending_task_is_a_leak_with_its_coroutine_phase_and_creation_site() -> None:
    (f,) = find_leaked_tasks(snap((task(1, "Thing._run"),)), set(), "after the flow")
    assert f.summary == "leaked task Thing._run (pending, after the flow) created at flow.py:10 in run"
    assert "m.py:1 in Thing._run" in f.evidence and "created at:" in f.evidence


def test_baseline_done_and_agent_tasks_are_not_leaks() -> None:
    s = snap((task(1, "Old._run"), task(2, "X._run", state="done"), task(3, "Agent.heartbeat", role="agent")))
    assert find_leaked_tasks(s, {1}, "after the flow") == []


def test_connection_machinery_is_ignored_only_while_open() -> None:
    machinery = tuple(task(i, c) for i, c in enumerate(("Client._read_loop", "Client._flusher", "Client._ping_interval")))
    assert find_leaked_tasks(snap(machinery, conn=OPEN), set(), "after the flow") == []
    assert len(find_leaked_tasks(snap(machinery, conn=CLOSED), set(), "after close")) == 3


def test_request_inbox_task_is_ignored_while_open_but_not_another_subscription_s() -> None:
    inbox = task(1, "Subscription._wait_for_msgs", subject="_INBOX.abc.*")
    other = task(2, "Subscription._wait_for_msgs", subject="orders.>")
    leaks = find_leaked_tasks(snap((inbox, other)), set(), "after the flow")
    assert [f.summary.split()[2] for f in leaks] == ["Subscription._wait_for_msgs"] and len(leaks) == 1
    assert len(find_leaked_tasks(snap((inbox,), conn=CLOSED), set(), "after close")) == 1


def test_reconnect_loop_is_ignored_only_while_reconnecting() -> None:
    from harness.agent.snapshot import ConnState

    t = task(1, "Client._attempt_reconnect")
    assert find_leaked_tasks(snap((t,), conn=ConnState(False, False, True)), set(), "p") == []
    assert len(find_leaked_tasks(snap((t,), conn=OPEN), set(), "p")) == 1


def test_step_settles_a_task_that_ends_a_moment_later() -> None:
    s = FakeSources(snapshots=Series(snap((task(5, "Late._run"),)), snap()))
    assert run_step("tasks", AFTER_FLOW, s) == []
    assert s.snapshots.calls == 2


def test_step_after_close_uses_the_pre_connect_baseline() -> None:
    pinger = task(9, "Client._ping_interval")
    s = FakeSources(baseline=Baseline(pre_connect_tasks=frozenset(), tasks=frozenset({9})),
                    snapshots=Series(snap((pinger,), conn=CLOSED)))
    assert run_step("tasks", AFTER_FLOW, s) == []  # there at the after-connect baseline
    (f,) = run_step("tasks", AFTER_CLOSE, s)  # but connect started it: after close it is a leak
    assert f.summary.startswith("leaked task Client._ping_interval (pending, after close)")
