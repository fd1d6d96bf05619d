"""Figures for the scenario engine: per-scenario harness overhead and the leak check's cost.

Overhead is a scenario's wall time minus its inherent waits (fault hold, the client's own
timeouts, grace periods spent on leaky cases, the server reaping inactive consumers).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from harness.checks.tasks import find_leaked_tasks
from harness.env.local import LocalEnvironment
from harness.runner import Runner
from harness.scenario import load_paths

ROOT = Path(__file__).resolve().parents[1]
TARGET_OVERHEAD = 0.150
TARGET_LEAK_CHECK = 0.050
LEAK_CHECK_ROUNDS = 20


def run() -> list[str]:
    scenarios = load_paths([ROOT / "scenarios" / "reference.yaml"])  # the suite has its own bench (suite_bench.py)
    clean = next(s for s in load_paths([ROOT / "tests/engine/selftest.yaml"]) if s.flow == "selftest.clean_task")
    with LocalEnvironment() as env:
        runner = Runner(env, run_seed=1)
        try:
            records = [runner.run(sc) for sc in scenarios]
            # The leak check on a clean flow: one snapshot plus the filter, as the runner does it.
            runner.run(clean)
            agent = runner.pool.get()
            try:
                agent.request("connect", options=env.connect_options())
                base = {t.id for t in agent.snapshot().tasks}
                costs = []
                for _ in range(LEAK_CHECK_ROUNDS):
                    t = time.perf_counter()
                    assert not find_leaked_tasks(agent.snapshot(), base, "bench")
                    costs.append(time.perf_counter() - t)
            finally:
                agent.exit()
        finally:
            runner.close()
    lines = _figures("local", records, costs)
    lines += _compose_overhead(scenarios, statistics.median(r.timings["overhead"] for r in records))
    return lines


def _compose_overhead(scenarios: list, local_median: float) -> list[str]:
    """The same reference set on the compose backend, its overhead beside the local one."""
    from harness.env.compose import ComposeEnvironment, docker_unavailable_reason

    why = docker_unavailable_reason()
    if why:
        return [f"  compose per-scenario overhead             skipped: {why}"]
    with ComposeEnvironment(ready_timeout=30) as env:
        runner = Runner(env, run_seed=1)
        try:
            records = [runner.run(sc) for sc in scenarios]
        finally:
            runner.close()
    over = [r.timings["overhead"] for r in records]
    return [
        f"  compose per-scenario overhead            median {statistics.median(over) * 1000:7.1f} ms"
        f"  (local {local_median * 1000:.1f} ms)   target <= {TARGET_OVERHEAD * 1000:.0f} ms"
    ]


def _figures(backend: str, records: list, costs: list[float]) -> list[str]:
    over = [r.timings["overhead"] for r in records]
    wall = sum(r.timings["wall"] for r in records)
    inherent = sum(r.timings["inherent"] for r in records)
    verdicts: dict[str, int] = {}
    for r in records:
        verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
    return [
        f"  reference set ({backend}): {len(records)} scenarios, verdicts {verdicts}",
        f"  per-scenario harness overhead            median {statistics.median(over) * 1000:7.1f} ms"
        f"  (min {min(over) * 1000:.1f} ms, max {max(over) * 1000:.1f} ms)   target <= {TARGET_OVERHEAD * 1000:.0f} ms",
        f"  leak check on a clean flow               median {statistics.median(costs) * 1000:7.1f} ms"
        f"  (n={len(costs)})   target <= {TARGET_LEAK_CHECK * 1000:.0f} ms",
        f"  overhead ratio (total wall / inherent)   {wall / max(inherent, 1e-9):7.2f}   (wall {wall:.1f} s, inherent {inherent:.1f} s)",
    ]
