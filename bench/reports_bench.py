"""Figures for reports and the gate: every output built from a synthetic 1,000-scenario
journal (target <= 2 s), and the gate's overhead on top of the runs it makes (<= 5 %).

Gate overhead = the `harness gate` process's wall time (measured from outside, its own
start-up included) minus the wall time of the `harness run` subprocesses it makes (the
first run and the reruns: the reruns are the gate's job, not its overhead). Measured on a
small real selection of reference scenarios, one of which fails with a known issue.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.gate import decide, markdown
from harness.journal import JournalWriter, read_journal
from harness.known_issues import load_known_issues
from harness.report import write_outputs

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = 1000
TARGET_REPORT = 2.0
TARGET_GATE = 0.05
GATE_SELECTION = "next.fetch and (none or unsubscribe)"
STACK = "\n".join(f"  /site-packages/nats/js/client.py:{n} in frame_{n}" for n in range(25))


def synthetic_journal(run_dir: Path, n: int = SCENARIOS, seed: int = 1) -> Path:
    """A journal shaped like real ones: ~25 events a scenario, a third failing with stacks."""
    rng = random.Random(seed)
    flows = ["objectstore.get", "kv.watch", "next.fetch", "next.iterate", "next.next_msg", "ack.ack", "ack.ack_sync"]
    faults = ["none", "stall.bandwidth0", "disconnect.proxy_down", "drain.nc_drain", "drain.close", "drain.unsubscribe"]
    w = JournalWriter(run_dir)
    w.header({"run_id": run_dir.name, "seed": seed, "backend": "local", "nats_py": "2.16.0", "nats_server": "v2.12.8",
              "toxiproxy": "v2.12.0", "harness": "bench"})
    for i in range(n):
        flow, fault = rng.choice(flows), rng.choice(faults)
        sid = f"{flow}[{fault}@t{i}]"
        verdict = rng.choices(["passed", "failed", "inconclusive", "error"], [60, 35, 3, 2])[0]
        findings = [{"check": rng.choice(["tasks", "iterators", "consumers", "subscriptions"]),
                     "summary": f"leaked task JetStreamContext._JSI.activity_check (pending, after the flow) #{i}",
                     "evidence": "stack:\n" + STACK} for _ in range(rng.randint(1, 3))] if verdict == "failed" else []
        t, events = 0.0, []
        for k in range(25):
            t += rng.uniform(0.01, 0.4)
            events.append({"t": round(t, 4), "source": "agent" if k % 3 else "runner",
                           "what": ["prepared", "flow started", "trigger fired", "fault injected", "conn", "fault healed",
                                    "outcome", "client closed"][k % 8], "state": "connected"})
        w.record({"id": sid, "flow": flow, "fault": fault, "trigger": "blocked", "seed": i, "verdict": verdict,
                  "reason": f"{len(findings)} finding(s)" if findings else "", "findings": findings, "events": events,
                  "timings": {"wall": round(t + 0.1, 4), "inherent": round(t, 4), "overhead": 0.1},
                  "replay": f"harness run 'scenarios/reference.yaml::{sid}' --seed 1" if verdict != "passed" else ""})
    w.end(1)
    w.close()
    return run_dir / "journal.jsonl"


def report_figures() -> list[str]:
    known = load_known_issues(ROOT / "known_issues/known_issues.yaml")
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        path = synthetic_journal(Path(tmp) / "run")
        size = path.stat().st_size
        for _ in range(3):
            t = time.perf_counter()
            j = read_journal(path)
            result = decide([j], known)
            write_outputs(j, gate=result, junit="always")
            (j.run_dir / "gate.md").write_text(markdown(result))
            times.append(time.perf_counter() - t)
        html = (Path(tmp) / "run/report.html").stat().st_size
    best = min(times)
    return [f"reports from a {SCENARIOS}-scenario journal ({size / 1e6:.1f} MB; journal.json, summary.md, report.html "
            f"{html / 1e6:.1f} MB, junit.xml, gate decisions + gate.md): {best:.2f} s (best of 3; "
            f"{', '.join(f'{x:.2f}' for x in times)})   target <= {TARGET_REPORT:.0f} s"]


def gate_figures() -> list[str]:
    exe = Path(sys.executable).with_name("harness")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        r = subprocess.run([str(exe), "gate", "-k", GATE_SELECTION, "--seed", "2026", "--reports", tmp], cwd=ROOT,
                           capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - t
    m = re.search(r"of which ([\d.]+)s in harness run", r.stdout)
    if m is None:
        return [f"gate overhead: could not measure (harness gate exited {r.returncode}): "
                f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}"]
    runs = float(m.group(1))
    return [f"gate overhead over its runs (-k '{GATE_SELECTION}', 2 reruns of the failing one, exit {r.returncode}): "
            f"{wall - runs:.2f} s over {runs:.1f} s of harness run = {(wall - runs) / runs * 100:.1f} %   "
            f"target <= {TARGET_GATE * 100:.0f} %"]


def run() -> list[str]:
    return report_figures() + gate_figures()
