"""Figures for the memory check: one soak scenario's samples per round and the fitted slopes.

Printed only (never pass/fail): the nak(delay) soak from scenarios/soak/, each round's
agent-side traced bytes, gc objects, tasks, subscriptions and RSS beside the server's
memory and ack-pending count, then the slope per round after the warm-up and its bound.
"""

from __future__ import annotations

from pathlib import Path

from harness.checks.memory import BOUNDS, CONTEXT
from harness.env.local import LocalEnvironment
from harness.runner import Runner
from harness.scenario import load_paths

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "soak.nak_delay[none]"
COLUMNS = ("traced", "objects", "tasks", "subs", "rss", "server_mem", "ack_pending")


def run() -> list[str]:
    sc = next(s for s in load_paths([ROOT / "scenarios" / "soak"]) if s.id == SCENARIO)
    with LocalEnvironment() as env:
        runner = Runner(env, run_seed=1)
        try:
            rec = runner.run(sc)
        finally:
            runner.close()
    m = rec.series.get("memory")
    if not m:
        return [f"{SCENARIO}: no samples ({rec.verdict}: {rec.reason})"]
    lines = [f"{SCENARIO}: {m['rounds']} rounds ({sc.params['count']} messages nak'd with a {sc.params['nak_delay']:g} s "
             f"delay per round), warm-up {m['warmup']}, verdict {rec.verdict}, wall {rec.timings['wall']:.1f} s",
             "  round " + " ".join(f"{c:>12s}" for c in COLUMNS)]
    for i in range(m["rounds"]):
        mark = "*" if i < m["warmup"] else " "
        lines.append(f"  {i + 1:4d}{mark} " + " ".join(f"{m['metrics'][c][i]:12.0f}" for c in COLUMNS))
    lines.append("  (* warm-up, left out of the fit)")
    for k, s in m["slopes"].items():
        bound = f"bound {BOUNDS[k]:g}" if k in BOUNDS else ("context, not judged" if k in CONTEXT else "")
        lines.append(f"  slope {k:12s} {s:12.3f} {m['units'].get(k, ''):13s} per round  ({bound})")
    return lines
