"""Figures for the local 3-node cluster: start to ready, teardown, a partition healed to ready.

"Ready" is what `LocalClusterEnvironment.start()` returns after: every node answers
/healthz?js-enabled-only=true, /jsz names a meta leader that counts every peer current, and
every node's /routez has routes to both others (through the route proxies).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from typing import Any

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


SCENARIO_ROUNDS = 7
TARGET_OVERHEAD_RATIO = 2.0


class Overhead:
    """One topology's figures over the rounds: harness overhead (wall minus inherent waiting),
    and the part of it the servers took answering the observer's prepare (the "prepared"
    event's `servers`: creates, on a cluster the new stream's and consumer's leader elections,
    replicated publishes)."""

    def __init__(self) -> None:
        self.overhead: list[float] = []
        self.servers: list[float] = []
        self.verdicts: set[str] = set()


def _prepare_servers(rec: Any) -> float:
    return next((e.get("servers", 0.0) for e in rec.events if e.get("what") == "prepared"), 0.0)


def measure_overhead(rounds: int = SCENARIO_ROUNDS) -> tuple[Overhead, Overhead]:
    """Harness overhead of the same control, next.fetch[none], on one server and on the cluster
    (R3): both environments up, the two scenarios taking turns `rounds` times, so a change in
    the machine's load falls on both alike."""
    from pathlib import Path

    from harness.env.local import LocalEnvironment
    from harness.runner import Runner
    from harness.scenario import load_paths

    root = Path(__file__).resolve().parents[1] / "scenarios"
    suite = load_paths([root])
    single = next(s for s in suite if s.id == "next.fetch[none]")
    clustered = next(s for s in suite if s.id == "next.fetch[none~r3]")
    out = (Overhead(), Overhead())
    with contextlib.ExitStack() as stack:
        runners = []
        for env, sc in ((LocalEnvironment(), single), (LocalClusterEnvironment(), clustered)):
            stack.enter_context(env)
            runner = Runner(env, run_seed=1)
            stack.callback(runner.close)
            runner.run(sc)  # the agent pool's first start is not the scenario's
            runners.append((runner, sc))
        for _ in range(rounds):
            for (runner, sc), o in zip(runners, out):
                rec = runner.run(sc)
                o.overhead.append(rec.timings["overhead"])
                o.servers.append(_prepare_servers(rec))
                o.verdicts.add(rec.verdict)
    return out


def run() -> list[str]:
    ups, downs, heals, versions = measure()
    single, clustered = measure_overhead()
    med = statistics.median
    ratio = med(clustered.overhead) / max(med(single.overhead), 1e-9)
    own = [o - s for o, s in zip(clustered.overhead, clustered.servers)]
    own1 = [o - s for o, s in zip(single.overhead, single.servers)]
    return [
        f"  3 nodes of nats-server {versions.get('nats-server', '?')}, toxiproxy {versions.get('toxiproxy', '?')}"
        f"  (load average {os.getloadavg()[0]:.1f})",
        _line("cluster up to ready (health, meta leader, routes)", ups, TARGET_UP),
        _line("a node's routes cut 1 s, healed to ready", heals, TARGET_HEAL),
        _line("cluster teardown", downs, TARGET_DOWN),
        _line("overhead of next.fetch[none], one server", single.overhead, 1.0),
        _line("overhead of next.fetch[none~r3], cluster", clustered.overhead, 2.0),
        f"  cluster / single overhead (medians)            {ratio:6.2f}x   target <= {TARGET_OVERHEAD_RATIO:.1f}x"
        f"   (verdicts: {', '.join(sorted(single.verdicts | clustered.verdicts))})",
        f"    of which the servers answering the prepare (creates, R3 elections, publishes): one server "
        f"{med(single.servers) * 1000:.0f} ms, cluster {med(clustered.servers) * 1000:.0f} ms (medians)",
        f"    the rest (the harness's own work), for context: one server {med(own1) * 1000:.0f} ms, "
        f"cluster {med(own) * 1000:.0f} ms, {med(own) / max(med(own1), 1e-9):.2f}x",
    ]
