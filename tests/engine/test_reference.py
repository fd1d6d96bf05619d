"""The reference scenarios against the real local environment: every one is conclusive.

Verdicts themselves speak about nats-py (see known_issues/); what this asserts is that
the harness exercised each scenario as designed: the trigger fired, the fault took
effect, the run recorded a verdict of `passed` or `failed`, and every finding carries
evidence and every non-passing record a replay command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.runner import Runner
from harness.scenario import load_paths

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = load_paths([ROOT / "scenarios"])


@pytest.mark.parametrize("sc", REFERENCE, ids=[s.id for s in REFERENCE])
def test_reference_scenario_is_conclusive(runner: Runner, sc) -> None:
    rec = runner.run(sc, replay=f"harness run 'scenarios/reference.yaml::{sc.id}'")
    assert rec.verdict in ("passed", "failed"), f"{rec.verdict}: {rec.reason}\n{rec.events}"
    if not sc.is_control:
        fired = [e for e in rec.events if e["what"] == "trigger fired"]
        evidence = [e for e in rec.events if e["what"] == "evidence"]
        assert fired and evidence and evidence[0]["ok"], evidence
    for f in rec.findings:
        assert f.summary and f.evidence, f
    assert (rec.replay != "") == (rec.verdict != "passed")
    assert rec.timings["overhead"] < rec.timings["wall"]
