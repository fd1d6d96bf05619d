"""Targets: a new client release made ready, a cached one, the agent's start in a target's
environment, and `harness matrix` over 2 targets x the reference set with and without
parallel cells. Printed figures, never pass/fail.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.agent.runner_side import AgentProcess
from harness.targets import cache_root, implementation, parse_client
from harness.targets.resolve import resolve_target

PROJECT = Path(__file__).resolve().parents[1]
NEW_RELEASE = "nats-py==2.10.0"


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _fresh_install() -> list[float]:
    out = []
    impl = implementation("nats-py")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            impl.ensure(parse_client(NEW_RELEASE), Path(d))
            out.append(time.perf_counter() - t)
    return out


def _cached() -> list[float]:
    resolve_target(NEW_RELEASE, None)
    out = []
    for _ in range(10):
        t = time.perf_counter()
        resolve_target(NEW_RELEASE, None)
        out.append(time.perf_counter() - t)
    return out


def _agent_ready(command: object) -> list[float]:
    out = []
    for _ in range(5):
        t = time.perf_counter()
        a = AgentProcess(command)  # type: ignore[arg-type]
        try:
            a.wait_ready()
            out.append(time.perf_counter() - t)
        finally:
            a.exit()
    return out


def _matrix(jobs: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "harness", "matrix", "scenarios/reference.yaml", "--client", "nats-py==2.0.0",
                            "--client", "nats-py==2.16.0", "-j", str(jobs), "--seed", "5", "--reports", d],
                           cwd=PROJECT, capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        cells = next(Path(d).glob("matrix-*/matrix.json"), None)
        n = len(json.loads(cells.read_text())["cells"]) if cells else 0
        return wall, f"exit {r.returncode}, {n} cells"


def run() -> list[str]:
    fresh = _fresh_install()
    cached = _cached()
    target = resolve_target(NEW_RELEASE, None)
    in_target = _agent_ready(target.command)
    in_harness = _agent_ready(None)
    lines = [
        f"new client release ready ({NEW_RELEASE}: venv + install, median of 3): {_median(fresh):.2f} s   (target <= 10 s)",
        f"cached client release ready (median of 10): {_median(cached) * 1000:.0f} ms   (target <= 200 ms)",
        f"agent ready in the target's venv (median of 5): {_median(in_target) * 1000:.0f} ms; "
        f"in the harness's own: {_median(in_harness) * 1000:.0f} ms (a spare agent is kept warm, so a scenario does not wait)",
        f"target cache: {cache_root()}",
    ]
    if os.environ.get("NATS_CHAOS_BENCH_QUICK"):
        lines.append("matrix wall time: skipped (NATS_CHAOS_BENCH_QUICK set)")
        return lines
    for jobs in (1, 2):
        wall, what = _matrix(jobs)
        lines.append(f"matrix 2 targets x reference set, {jobs} cell(s) at once: {wall:.0f} s ({what})")
    return lines
