"""Detection power with many scenarios in flight: `harness run -n auto` over five copies of each
deliberate fault (spin, blocked loop, leaked task, consumer left, stuck iterator, memory
growth) and of their clean twins; every copy of a fault is caught by its check, every twin
passes. A busy machine's doubt goes to the serial lane, never into a verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HARNESS = Path(sys.executable).with_name("harness")
RUNS = 5
LEAKY = {  # flow: (the check that must catch it, a phrase its summary must contain)
    "selftest.spin": ("loop", "spinning"),
    "selftest.block": ("loop", "blocked (idle CPU)"),
    "selftest.leak_task": ("tasks", "leaked task _forever"),
    "selftest.leave_consumer": ("consumers", "kept alive"),
    "selftest.stuck_iterator": ("iterators", "messages.__anext__ still pending"),
    "selftest.soak_leak": ("memory", "traced grows"),
}
CLEAN = ["selftest.yield", "selftest.clean_task", "selftest.clean_consumer", "selftest.clean_iterator",
         "selftest.soak_clean"]


def _scenarios() -> str:
    out = ["defaults:\n  timeout: 8\nmatrix:\n"]
    for i in range(RUNS):
        plain = [f for f in (*LEAKY, *CLEAN) if not f.startswith("selftest.soak")]
        out.append(f"  - name: run{i}\n    variant: r{i}\n    flows: [{', '.join(plain)}]\n")
        out.append(f"  - name: soak{i}\n    variant: r{i}\n    flows: [selftest.soak_leak, selftest.soak_clean]\n"
                   "    rounds: 25\n")
    return "".join(out)


def test_deliberate_faults_are_caught_and_clean_twins_pass_at_the_chosen_concurrency(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(_scenarios())
    r = subprocess.run([str(HARNESS), "run", "--seed", "15", "-n", "auto"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert "scenarios in flight" in r.stdout  # -n auto: the schedule line
    records = json.loads((tmp_path / "reports/latest/journal.json").read_text())["records"]
    by_flow: dict[str, list[dict]] = {}
    for rec in records:
        by_flow.setdefault(rec["flow"], []).append(rec)
    for flow, (check, phrase) in LEAKY.items():
        got = by_flow[flow]
        assert len(got) == RUNS
        for rec in got:
            assert rec["verdict"] == "failed" and any(f["check"] == check and phrase in f["summary"] for f in rec["findings"]), (
                flow, rec["verdict"], [(f["check"], f["summary"]) for f in rec["findings"]])
    for flow in CLEAN:
        got = by_flow[flow]
        assert len(got) == RUNS
        for rec in got:
            assert rec["verdict"] == "passed", (flow, [(f["check"], f["summary"]) for f in rec["findings"]], rec.get("lane"))
