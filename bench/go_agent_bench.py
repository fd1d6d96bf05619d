"""Figures for nats.go as the client under test: the Go agent's first build, a cached agent's
start to ready, and per-scenario harness overhead beside the Python agent's.

The first build goes into an empty target cache; "cold" also empties Go's build cache (as on
a fresh machine: every package compiled), "warm" keeps it (modules and packages compiled by
an earlier build of any release). Overhead: the reference set's no-fault controls, each run
by both agents, wall time minus inherent waits (as engine_bench.py).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from harness.agent.runner_side import AgentProcess
from harness.env.local import LocalEnvironment
from harness.runner import Runner
from harness.scenario import load_paths
from harness.targets import ClientTarget, cache_root
from harness.targets.nats_go import DEFAULT_VERSION, NatsGo

ROOT = Path(__file__).resolve().parents[1]
TARGET_FIRST_BUILD = 60.0
TARGET_READY = 0.050
TARGET_OVERHEAD = 0.150
READY_ROUNDS = 10


def run() -> list[str]:
    if shutil.which("go") is None:
        return ["  Go agent                                 skipped: `go` is not on PATH"]
    impl, target = NatsGo(), ClientTarget("nats.go", DEFAULT_VERSION, "release")
    lines = []
    for label, cold in (("warm Go build cache", False), ("cold Go build cache", True)):
        with tempfile.TemporaryDirectory() as d:
            saved = os.environ.get("GOCACHE")
            if cold:
                os.environ["GOCACHE"] = str(Path(d) / "gocache")
            try:
                t = time.perf_counter()
                impl.ensure(target, Path(d) / "targets")
                took = time.perf_counter() - t
            finally:
                if saved is None:
                    os.environ.pop("GOCACHE", None)
                else:
                    os.environ["GOCACHE"] = saved
        lines.append(f"  Go agent first build ({label}){' ' * (21 - len(label))}{took:7.1f} s"
                     f"        target <= {TARGET_FIRST_BUILD:.0f} s")
    _, command = impl.ensure(target, cache_root())
    go_ready, py_ready = [], []
    for _ in range(READY_ROUNDS):
        for cmd, out in ((command, go_ready), (None, py_ready)):
            t = time.perf_counter()
            if cmd is not None:
                impl.ensure(target, cache_root())  # the cache lookup is part of a cached agent's start
            a = AgentProcess(cmd)
            try:
                a.wait_ready()
                out.append(time.perf_counter() - t)
            finally:
                a.exit()
    lines.append(f"  cached Go agent ready (median of {READY_ROUNDS})     {statistics.median(go_ready) * 1000:7.1f} ms"
                 f"  (Python agent {statistics.median(py_ready) * 1000:.1f} ms)   target <= {TARGET_READY * 1000:.0f} ms")
    controls = [s for s in load_paths([ROOT / "scenarios"]) if s.is_control]
    over: dict[str, list[float]] = {"go": [], "py": []}
    with LocalEnvironment() as env:
        for key, cmd in (("go", command), ("py", None)):
            runner = Runner(env, run_seed=1, agent_command=cmd)
            try:
                for sc in controls:
                    rec = runner.run(sc)
                    if rec.verdict != "not_applicable":
                        over[key].append(rec.timings["overhead"])
            finally:
                runner.close()
    lines.append(f"  per-scenario overhead, {len(controls)} controls (median) {statistics.median(over['go']) * 1000:7.1f} ms"
                 f"  (Python agent {statistics.median(over['py']) * 1000:.1f} ms)   target <= {TARGET_OVERHEAD * 1000:.0f} ms")
    return lines
