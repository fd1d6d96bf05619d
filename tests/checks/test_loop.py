"""loop: each heartbeat gap is one finding, a spin told from a block by its CPU share."""

from __future__ import annotations

from checks_helpers import FakeSources, run_step

from harness.checks import AFTER_CLOSE
from harness.checks.loop import find_blocked_loop, machine_made, whose_gap


def test_gaps_are_spins_or_blocks() -> None:
    spin, block = find_blocked_loop([{"duration": 2.0, "cpu_busy": 0.48, "stacks": "in spin"},
                                     {"duration": 1.1, "cpu_busy": 0.0, "stacks": "in sleep"}])
    assert spin.summary == "event loop spinning for 2.00s (cpu 48%)" and spin.evidence == "in spin"
    assert block.summary == "event loop blocked (idle CPU) for 1.10s (cpu 0%)"


def test_step_reads_the_runner_s_heartbeat_record() -> None:
    assert run_step("loop", AFTER_CLOSE, FakeSources()) == []
    assert len(run_step("loop", AFTER_CLOSE, FakeSources(gaps=[{"duration": 1, "cpu_busy": 1, "stacks": ""}]))) == 1


def test_a_gap_the_machine_made_is_no_finding_an_undecided_one_is() -> None:
    # the agent's heartbeats say how long its loop's thread waited for a CPU (`queued`)
    starved = {"duration": 1.2, "queued": 0.9, "cpu_busy": 0.05, "bound": 0.75, "stacks": ""}
    slowed_spin = {"duration": 2.0, "queued": 1.5, "cpu_busy": 0.98, "cpu": 0.49, "bound": 0.75, "stacks": "in spin"}
    blocked = {"duration": 2.3, "queued": 0.3, "cpu_busy": 0.01, "bound": 0.75, "stacks": "in sleep"}
    untold = {"duration": 1.2, "cpu_busy": 0.0, "stacks": ""}  # an agent that cannot tell (not Linux, Go)
    assert [whose_gap(g) for g in (starved, slowed_spin, blocked, untold)] == ["machine", "undecided", "agent", "agent"]
    assert machine_made(starved) and not machine_made(slowed_spin)
    spin, block, other = find_blocked_loop([starved, slowed_spin, blocked, untold])
    assert spin.summary == "event loop spinning for 2.00s (cpu 98%, 1.50s of it waiting for a CPU)"
    assert block.summary == "event loop blocked (idle CPU) for 2.30s (cpu 1%, 0.30s of it waiting for a CPU)"
    assert other.summary == "event loop blocked (idle CPU) for 1.20s (cpu 0%)"


def test_a_burst_the_machine_stretched_and_a_spin_it_slowed_are_both_undecided() -> None:
    # measured under load: 20 ms of work in a 0.95 s gap, 0.90 s of it waiting for a CPU; a
    # spin given a tenth of a core burns little more: neither is let go as the machine's
    stretched = {"duration": 0.95, "queued": 0.9, "cpu_busy": 0.42, "cpu": 0.021, "bound": 0.75}
    assert whose_gap(stretched) == "undecided"
    assert whose_gap({**stretched, "duration": 2.0, "queued": 1.8, "cpu_busy": 1.0, "cpu": 0.2}) == "undecided"


def test_the_wait_for_a_cpu_is_judged_against_the_same_bound() -> None:
    # 0.75 s of the agent's own time is not a block; 0.76 s is, however long the gap
    assert machine_made({"duration": 1.75, "queued": 1.0, "cpu_busy": 0.0, "bound": 0.75})
    assert not machine_made({"duration": 1.76, "queued": 1.0, "cpu_busy": 0.0, "bound": 0.75})


def test_a_heartbeat_gap_takes_the_cpu_share_over_the_agent_s_own_time() -> None:
    from harness.agent.runner_side import BLOCKED_AFTER, busy_share, heartbeat_gap

    g = heartbeat_gap(10.0, 12.0, cpu=0.49, queued=1.5)
    assert g == {"since": 10.0, "until": 12.0, "duration": 2.0, "cpu_busy": 0.98, "cpu": 0.49, "bound": BLOCKED_AFTER,
                 "queued": 1.5}
    assert heartbeat_gap(10.0, 11.0, cpu=0.5, queued=None)["cpu_busy"] == 0.5  # untold: over the whole gap
    # per thread: a spinning thread that got 0.1 s of a 1 s window (0.9 s queued) is busy; a sleeper is not
    assert busy_share({1: (0.0, 0.0), 2: (5.0, 1.0)}, {1: (0.1, 0.9), 2: (5.001, 1.0)}, 1.0) == 1.0
    assert busy_share({1: (0.0, 0.0)}, {1: (0.01, 0.0)}, 1.0) == 0.01
