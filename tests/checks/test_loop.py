"""loop: each heartbeat gap is one finding, a spin told from a block by its CPU share."""

from __future__ import annotations

from checks_helpers import FakeSources, run_step

from harness.checks import AFTER_CLOSE
from harness.checks.loop import find_blocked_loop


def test_gaps_are_spins_or_blocks() -> None:
    spin, block = find_blocked_loop([{"duration": 2.0, "cpu_busy": 0.48, "stacks": "in spin"},
                                     {"duration": 1.1, "cpu_busy": 0.0, "stacks": "in sleep"}])
    assert spin.summary == "event loop spinning for 2.00s (cpu 48%)" and spin.evidence == "in spin"
    assert block.summary == "event loop blocked (idle CPU) for 1.10s (cpu 0%)"


def test_step_reads_the_runner_s_heartbeat_record() -> None:
    assert run_step("loop", AFTER_CLOSE, FakeSources()) == []
    assert len(run_step("loop", AFTER_CLOSE, FakeSources(gaps=[{"duration": 1, "cpu_busy": 1, "stacks": ""}]))) == 1
