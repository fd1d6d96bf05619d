"""Figures for the default suite (`make chaos`) and the quick selection (`make chaos-quick`).

The suite is run as users run it (`harness run`, parallel workers) three times with
different seeds: every scenario must get the same verdict each time (a flip is a bug to
fix, and is printed by id). Printed: wall time per run, scenario count, the overhead ratio
(the scenarios' summed wall time over their summed inherent waits), and the quick
selection's wall time. Figures only: nothing here passes or fails on timing.

    .venv/bin/python bench/run.py suite
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = str(Path(sys.executable).with_name("harness"))
SEEDS = (101, 202, 303)
WORKERS = os.environ.get("NATS_CHAOS_BENCH_WORKERS", "2")
TARGET_WALL = 240.0
TARGET_QUICK = 60.0
TARGET_RATIO = 1.25


def _run(args: list[str], reports: Path) -> tuple[float, list[dict], int]:
    """One `harness run` as a user types it: its wall time, its journal's records, its exit status."""
    t = time.monotonic()
    r = subprocess.run([HARNESS, "run", *args, "-n", WORKERS, "--reports", str(reports)], cwd=ROOT,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=1800)
    wall = time.monotonic() - t
    journal = reports / "latest" / "journal.json"
    if r.returncode not in (0, 1) or not journal.exists():
        raise RuntimeError(f"harness run {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    return wall, json.loads(journal.read_text())["records"], r.returncode


def run() -> list[str]:
    lines: list[str] = []
    runs: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="suite-bench-") as tmp:
        for seed in SEEDS:
            wall, records, _ = _run(["scenarios", "--seed", str(seed)], Path(tmp, f"s{seed}"))
            runs.append({r["id"]: r["verdict"] for r in records})
            summed = sum(r["timings"]["wall"] for r in records)
            inherent = sum(r["timings"]["inherent"] for r in records)
            counts: dict[str, int] = {}
            for r in records:
                counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
            lines.append(f"  suite, seed {seed}: {len(records)} scenarios in {wall:6.1f} s wall (-n {WORKERS}; target <= "
                         f"{TARGET_WALL:.0f} s), verdicts {counts}, overhead ratio {summed / max(inherent, 1e-9):.2f} "
                         f"({summed:.0f} s / {inherent:.0f} s inherent; target <= {TARGET_RATIO})")
        quick_wall, quick, _ = _run(["scenarios", "-m", "quick", "--seed", str(SEEDS[0])], Path(tmp, "quick"))
    ids = sorted(set().union(*runs))
    flips = [i for i in ids if len({r.get(i, "missing") for r in runs}) > 1]
    lines.append(f"  verdicts across seeds {', '.join(map(str, SEEDS))}: {len(ids) - len(flips)} of {len(ids)} identical")
    for i in flips:
        lines.append(f"    FLIP {i}: " + ", ".join(f"seed {s}: {r.get(i, 'missing')}" for s, r in zip(SEEDS, runs)))
    failing = sorted(i for i in ids if all(r.get(i) == "failed" for r in runs))
    lines.append(f"  failing in every run ({len(failing)}): " + ", ".join(failing))
    lines.append(f"  quick selection (-m quick): {len(quick)} scenarios in {quick_wall:5.1f} s wall (target <= {TARGET_QUICK:.0f} s)")
    return lines
