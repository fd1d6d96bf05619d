"""An agent that crashes, hangs or spins never takes the run down, and never outlives it."""

from __future__ import annotations

import dataclasses

from harness.runner import Runner
from engine_helpers import agent_processes, selftest


def test_crashed_agent_gives_error_with_its_stderr_and_the_run_goes_on(runner: Runner) -> None:
    rec = runner.run(selftest("selftest.crash"))
    assert rec.verdict == "error"
    assert "agent died" in rec.reason
    assert any("selftest.crash: about to die" in e.get("error", "") for e in rec.events), "stderr not recorded"
    nxt = runner.run(selftest("selftest.clean_task"))
    assert nxt.verdict == "passed"
    # the crashed agent and the clean one are gone: at most the warm spare is left
    assert len(agent_processes()) <= 1


def test_agent_spinning_past_the_deadline_is_a_finding_and_is_killed(runner: Runner) -> None:
    sc = dataclasses.replace(selftest("selftest.spin"), params={"seconds": 30.0}, timeout=2.0)
    rec = runner.run(sc)
    assert rec.verdict == "failed"
    checks = {f.check for f in rec.findings}
    assert {"loop", "iterators"} <= checks
    assert rec.timings["wall"] < 10, "the runner waited on a spinning agent"
    assert len(agent_processes()) <= 1, "the spinning agent was not killed"
    assert runner.run(selftest("selftest.clean_task")).verdict == "passed"


def test_no_agent_left_between_scenarios(runner: Runner) -> None:
    runner.run(selftest("selftest.clean_task"))
    # at most the one warm spare, idle and waiting for its scenario
    assert len(agent_processes()) <= 1


def test_agent_hanging_past_the_deadline_is_a_blocked_loop_with_idle_cpu(runner: Runner) -> None:
    sc = dataclasses.replace(selftest("selftest.block"), params={"seconds": 30.0}, timeout=2.0)
    rec = runner.run(sc)
    assert rec.verdict == "failed"
    loop = [f for f in rec.findings if f.check == "loop"]
    assert loop and "blocked (idle CPU)" in loop[0].summary, [f.summary for f in rec.findings]
    assert "in block" in loop[0].evidence
    assert rec.timings["wall"] < 10
    assert len(agent_processes()) <= 1, "the hanging agent was not killed"
    assert runner.run(selftest("selftest.clean_task")).verdict == "passed"
