"""Figures for the default suite (`make chaos`) and the quick selection (`make chaos-quick`).

The suite is run as users run it (`harness run -n auto`: as many scenarios in flight as the
machine holds, longest first; harness/schedule.py) three times with different seeds, and once
serially (`-n 0`, the first seed): every scenario must get the same verdict each time and the
same as the serial run (a flip is a bug to fix, and is printed by id). Printed per run: wall
time, the sum of the scenarios' inherent waits, their ratio (the effective concurrency:
how many scenarios' waits overlapped on average), the CPU time the run used, the machine's
load, the scenarios judged again alone (the serial lane); the overhead ratio (summed
scenario wall time over summed inherent waits); the quick selection's wall time. Figures
only: nothing here passes or fails on timing. NATS_CHAOS_BENCH_WORKERS sets -n (default
auto); NATS_CHAOS_BENCH_SERIAL=0 skips the serial run (~8 min).

    .venv/bin/python bench/run.py suite
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HARNESS = str(Path(sys.executable).with_name("harness"))
SEEDS = (101, 202, 303)
WORKERS = os.environ.get("NATS_CHAOS_BENCH_WORKERS", "auto")
SERIAL = os.environ.get("NATS_CHAOS_BENCH_SERIAL", "1") != "0"
TARGET_WALL = 120.0
TARGET_CONCURRENCY = 3.5
TARGET_QUICK = 60.0
TARGET_RATIO = 1.25


def _run(args: list[str], reports: Path, workers: str = WORKERS) -> tuple[float, list[dict], dict[str, Any]]:
    """One `harness run` as a user types it: its wall time, its journal's records, and what the
    run used (CPU seconds of the run's processes, the load average before and after, its schedule line)."""
    load0, cpu0 = os.getloadavg()[0], _children_cpu()
    t = time.monotonic()
    r = subprocess.run([HARNESS, "run", *args, "-n", workers, "--reports", str(reports)], cwd=ROOT,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=1800)
    wall = time.monotonic() - t
    journal = reports / "latest" / "journal.json"
    if not journal.exists():  # exit 2 with a journal: a scenario's `error`, shown with the figures
        raise RuntimeError(f"harness run {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    schedule = next((ln.split(": ", 1)[1] for ln in r.stdout.splitlines() if ln.startswith("schedule:")), f"-n {workers}")
    used = {"cpu": _children_cpu() - cpu0, "load": (load0, os.getloadavg()[0]), "schedule": schedule}
    return wall, json.loads(journal.read_text())["records"], used


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # the harness run and every process it waited for
    return ru.ru_utime + ru.ru_stime


def _figures(label: str, wall: float, records: list[dict], used: dict[str, Any]) -> list[str]:
    summed = sum(r["timings"]["wall"] for r in records)
    inherent = sum(r["timings"]["inherent"] for r in records)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    alone = [f"{r['id']} ({r['lane']['first_verdict']} -> {r['verdict']})" for r in records if r.get("lane")]
    return [f"  {label}: {len(records)} scenarios in {wall:6.1f} s wall (target <= {TARGET_WALL:.0f} s); "
            f"inherent waits {inherent:.0f} s; effective concurrency {inherent / max(wall, 1e-9):.2f} "
            f"(inherent / wall; target >= {TARGET_CONCURRENCY}); {used['schedule']}",
            f"      verdicts {counts}; overhead ratio {summed / max(inherent, 1e-9):.2f} ({summed:.0f} s / {inherent:.0f} s "
            f"inherent; target <= {TARGET_RATIO}); CPU {used['cpu']:.0f} s; load average {used['load'][0]:.1f} before, "
            f"{used['load'][1]:.1f} after; judged alone: {', '.join(alone) or 'none'}"] + [
            f"      {r['verdict'].upper()} {r['id']}: {r['reason'][:200]}" for r in records
            if r["verdict"] in ("error", "inconclusive")]


def run() -> list[str]:
    lines: list[str] = []
    runs: list[dict[str, str]] = []
    labels: list[str] = []
    with tempfile.TemporaryDirectory(prefix="suite-bench-") as tmp:
        # One reports directory for the concurrent runs: each orders the suite by the last one's durations.
        for seed in SEEDS:
            wall, records, used = _run(["scenarios", "--seed", str(seed)], Path(tmp, "runs"))
            runs.append({r["id"]: r["verdict"] for r in records})
            labels.append(f"seed {seed}")
            lines += _figures(f"suite, seed {seed}", wall, records, used)
        if SERIAL:
            wall, records, used = _run(["scenarios", "--seed", str(SEEDS[0])], Path(tmp, "serial"), workers="0")
            runs.append({r["id"]: r["verdict"] for r in records})
            labels.append(f"serial, seed {SEEDS[0]}")
            lines += _figures(f"suite serially (-n 0), seed {SEEDS[0]}", wall, records, used)
        quick_wall, quick, _ = _run(["scenarios", "-m", "quick", "--seed", str(SEEDS[0])], Path(tmp, "quick"))
    ids = sorted(set().union(*runs))
    flips = [i for i in ids if len({r.get(i, "missing") for r in runs}) > 1]
    lines.append(f"  verdicts across {'; '.join(labels)}: {len(ids) - len(flips)} of {len(ids)} identical")
    for i in flips:
        lines.append(f"    FLIP {i}: " + ", ".join(f"{lb}: {r.get(i, 'missing')}" for lb, r in zip(labels, runs)))
    failing = sorted(i for i in ids if all(r.get(i) == "failed" for r in runs))
    lines.append(f"  failing in every run ({len(failing)}): " + ", ".join(failing))
    lines.append(f"  quick selection (-m quick): {len(quick)} scenarios in {quick_wall:5.1f} s wall (target <= {TARGET_QUICK:.0f} s)")
    return lines
