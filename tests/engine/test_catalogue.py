"""A few representative scenarios of the default suite (the whole suite is `make chaos`, not CI):
the new flows' controls pass, and each new way of landing a fault reaches its known issue."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.runner import Runner
from harness.scenario import load_file

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = {s.id: s for s in load_file(ROOT / "scenarios" / "catalogue.yaml")}

EXPECTED = [
    # id, verdict, (check, phrase) a finding must have
    ("worker.pull[none]", "passed", None),
    ("publish.js[none]", "passed", None),
    ("objectstore.put[stall.upstream@in_call]", "passed", None),  # the upstream stall's evidence, a put that survives it
    ("worker.pull[stall.bandwidth0@in_call]", "failed", ("iterators", "nc.drain still pending")),  # KI-007
    ("kv.keys[stall.bandwidth0@api_request]", "failed", ("subscriptions", "left (after the flow)")),  # KI-011
    # KI-012: judged while the upstream stall still holds (composite, stagger 1 s); KI-017 after the heal
    ("publish.core[stall.upstream+drain.close@in_call]", "failed", ("iterators", "close did not return within")),
    ("publish.core[stall.upstream+drain.close@in_call]", "failed", ("iterators", "not resolved after the heal")),
]


@pytest.mark.parametrize("sid,verdict,finding", EXPECTED, ids=[f"{e[0]}-{e[2][1] if e[2] else 'clean'}" for e in EXPECTED])
def test_representative_suite_scenario(runner: Runner, sid: str, verdict: str, finding) -> None:
    rec = runner.run(CATALOGUE[sid])
    summary = f"{rec.verdict}: {rec.reason} {[(f.check, f.summary) for f in rec.findings]}"
    assert rec.verdict == verdict, summary
    if not CATALOGUE[sid].is_control:
        evidence = [e for e in rec.events if e["what"] == "evidence"]
        assert evidence and evidence[0]["ok"], evidence
    if finding:
        check, phrase = finding
        assert any(f.check == check and phrase in f.summary and f.evidence for f in rec.findings), summary
