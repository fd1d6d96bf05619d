"""Every nats-py release from 2.0.0 to 2.16.0 is a valid target: each built-in flow's no-fault
control passes, or is `not_applicable` (the release lacks its API), or fails only with a
finding a known issue explains for that release (e.g. KI-018 on 2.0.0–2.2.0) — never `error`,
never `inconclusive`, never an unexplained finding.

Exhaustive (27 releases × every flow, ~10 minutes on 2 cores): `make test-releases` and the
nightly job run it; `make test` does not (marker `releases`). The oldest and the newest
release run the whole reference set in `make test` (test_reference_across_releases.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.flows import FLOWS
from harness.gate import decide_scenario
from harness.known_issues import load_known_issues, target_of
from harness.targets import implementation

pytestmark = pytest.mark.releases
PROJECT = Path(__file__).resolve().parents[2]


def controls_file(path: Path) -> Path:
    """A scenario file with the no-fault control of every built-in flow but the soaks."""
    # Soak flows are run as soaks (`make soak`); the rest, new flows included, are all here.
    flows = sorted(n for n, s in FLOWS.items() if s.module.startswith("harness.flows") and not n.startswith(("selftest.", "soak.")))
    path.write_text("matrix:\n" + "".join(f"  - name: c{i}\n    flows: [{f}]\n    faults: [none]\n" for i, f in enumerate(flows)))
    return path


def test_every_release_runs_every_flow_or_says_it_cannot(tmp_path: Path) -> None:
    versions = [v for v in implementation("nats-py").published_versions()]
    scen = controls_file(tmp_path / "controls.yaml")
    argv = [sys.executable, "-m", "harness", "matrix", str(scen), "--seed", "3", "--reports", str(tmp_path / "r")]
    for v in versions:
        argv += ["--client", f"nats-py=={v}"]
    r = subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, timeout=3000, stdin=subprocess.DEVNULL,
                       env={**os.environ})
    out = json.loads(next((tmp_path / "r").glob("matrix-*/matrix.json")).read_text())
    known = load_known_issues(PROJECT / "known_issues" / "known_issues.yaml")
    bad = []
    for t in out["targets"]:
        assert t["journal"], f"{t['label']}: no journal ({r.stdout[-2000:]})"
        journal = json.loads(Path(t["journal"]).read_text())
        applicable = known.applicable(target_of(journal["header"]))
        for rec in journal["records"]:
            d = decide_scenario(rec["id"], [rec], applicable)
            if d.status not in ("passed", "not_applicable", "known"):
                bad.append(f"{t['label']}: {rec['id']} {d.status}: {d.summary}")
    assert not bad, "\n".join(bad)
    assert len(out["targets"]) == len(versions)
