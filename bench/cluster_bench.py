"""Figures for the local 3-node cluster: start to ready, teardown, a partition healed to ready.

"Ready" is what `LocalClusterEnvironment.start()` returns after: every node answers
/healthz?js-enabled-only=true, /jsz names a meta leader that counts every peer current, and
every node's /routez has routes to both others (through the route proxies).
"""

from __future__ import annotations

import statistics
import time

from harness.env.cluster import LocalClusterEnvironment

ROUNDS = 5
TARGET_UP = 3.0
TARGET_DOWN = 1.0
TARGET_HEAL = 3.0


def _line(what: str, samples: list[float], target: float) -> str:
    med = statistics.median(samples)
    return (f"  {what:<44} median {med:6.2f} s  (min {min(samples):.2f}, max {max(samples):.2f}, n={len(samples)})"
            f"   target <= {target:.1f} s")


def measure(rounds: int = ROUNDS) -> tuple[list[float], list[float], list[float], dict[str, str]]:
    ups: list[float] = []
    downs: list[float] = []
    heals: list[float] = []
    versions: dict[str, str] = {}
    for _ in range(rounds):
        env = LocalClusterEnvironment()
        t0 = time.perf_counter()
        try:
            env.start()
            ups.append(time.perf_counter() - t0)
            versions = versions or env.versions()
            cut = env.route_proxies("n3")
            for p in cut:
                env.toxiproxy.disable(p)
            time.sleep(1.0)
            t1 = time.perf_counter()
            for p in cut:
                env.toxiproxy.enable(p)
            env.wait_ready()
            heals.append(time.perf_counter() - t1)
        finally:
            t2 = time.perf_counter()
            env.stop()
            downs.append(time.perf_counter() - t2)
    return ups, downs, heals, versions


SCENARIO_ROUNDS = 3
TARGET_OVERHEAD_RATIO = 2.0


def measure_overhead(rounds: int = SCENARIO_ROUNDS) -> tuple[list[float], list[float]]:
    """Harness overhead (wall minus inherent waiting) of the same control, next.fetch[none], on
    one server and on the cluster (R3), each scenario run `rounds` times on one environment."""
    from pathlib import Path

    from harness.env.local import LocalEnvironment
    from harness.runner import Runner
    from harness.scenario import load_paths

    root = Path(__file__).resolve().parents[1] / "scenarios"
    suite = load_paths([root])
    single = next(s for s in suite if s.id == "next.fetch[none]")
    clustered = next(s for s in suite if s.id == "next.fetch[none~r3]")
    out: list[list[float]] = []
    for env, sc in ((LocalEnvironment(), single), (LocalClusterEnvironment(), clustered)):
        with env:
            runner = Runner(env, run_seed=1)
            try:
                runner.run(sc)  # the agent pool's first start is not the scenario's
                out.append([runner.run(sc).timings["overhead"] for _ in range(rounds)])
            finally:
                runner.close()
    return out[0], out[1]


def run() -> list[str]:
    ups, downs, heals, versions = measure()
    single, clustered = measure_overhead()
    ratio = statistics.median(clustered) / max(statistics.median(single), 1e-9)
    return [
        f"  3 nodes of nats-server {versions.get('nats-server', '?')}, toxiproxy {versions.get('toxiproxy', '?')}",
        _line("cluster up to ready (health, meta leader, routes)", ups, TARGET_UP),
        _line("a node's routes cut 1 s, healed to ready", heals, TARGET_HEAL),
        _line("cluster teardown", downs, TARGET_DOWN),
        _line("overhead of next.fetch[none], one server", single, 1.0),
        _line("overhead of next.fetch[none~r3], cluster", clustered, 2.0),
        f"  cluster / single overhead (medians)            {ratio:6.2f}x   target <= {TARGET_OVERHEAD_RATIO:.1f}x",
    ]
