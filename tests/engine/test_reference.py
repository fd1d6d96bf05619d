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
REFERENCE = load_paths([ROOT / "scenarios" / "reference.yaml"])  # the whole suite is `make chaos`, not CI


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


CATALOGUE = """\
matrix:
  - name: every-fault
    flows: [ack.ack_sync]
    faults: [stall.bandwidth0, stall.timeout, stall.latency, stall.pause, disconnect.reset_peer,
             disconnect.proxy_down, disconnect.kill, disconnect.restart, drain.nc_drain, drain.close, drain.lame_duck,
             stall.bandwidth0+drain.nc_drain]
    triggers: [before_ack]
    hold: 1.0
  - name: limit-data
    flows: [objectstore.get]
    faults: [disconnect.limit_data]
    triggers: [in_call]
    fault_params: {bytes: 65536}
"""


def test_every_fault_takes_effect_with_evidence(runner: Runner, tmp_path: Path) -> None:
    from harness.scenario import load_file

    p = tmp_path / "catalogue.yaml"
    p.write_text(CATALOGUE)
    for sc in load_file(p):
        rec = runner.run(sc)
        evidence = [e for e in rec.events if e["what"] == "evidence"]
        assert rec.verdict in ("passed", "failed"), f"{sc.id}: {rec.verdict}: {rec.reason}"
        assert evidence and evidence[0]["ok"], f"{sc.id}: {evidence}"
    assert runner.env.server_running()
