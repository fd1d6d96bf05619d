"""Figures for the local environment: start to ready, teardown, and a second `make setup`.

"Ready" is what `LocalEnvironment.start()` returns after: nats-server answers /healthz,
toxiproxy-server answers /version, the proxy is created and a NATS INFO arrives through it.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from harness.env.local import LocalEnvironment

ROUNDS = 10
SETUP_ROUNDS = 3
TARGET_UP = 0.3
TARGET_DOWN = 0.2
TARGET_SETUP = 5.0
ROOT = Path(__file__).resolve().parents[1]


def _fmt(secs: float) -> str:
    return f"{secs * 1000:7.1f} ms" if secs < 1 else f"{secs:7.2f} s "


def _line(what: str, samples: list[float], target: float) -> str:
    med = statistics.median(samples)
    return (
        f"  {what:<44} median {_fmt(med)}  (min {_fmt(min(samples)).strip()}, max {_fmt(max(samples)).strip()},"
        f" n={len(samples)})   target <= {_fmt(target).strip()}"
    )


def measure_env(rounds: int = ROUNDS) -> tuple[list[float], list[float], dict[str, str]]:
    ups: list[float] = []
    downs: list[float] = []
    versions: dict[str, str] = {}
    for _ in range(rounds):
        env = LocalEnvironment()
        t0 = time.perf_counter()
        try:
            env.start()
            ups.append(time.perf_counter() - t0)
            versions = versions or env.versions()
        finally:
            t1 = time.perf_counter()
            env.stop()
            downs.append(time.perf_counter() - t1)
    return ups, downs, versions


def measure_setup(rounds: int = SETUP_ROUNDS) -> list[float]:
    """`make setup` with everything already installed (the first run happened before `make bench`)."""
    subprocess.run(["make", "-s", "setup"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(["make", "-s", "setup"], cwd=ROOT, check=True, capture_output=True, timeout=600)
        out.append(time.perf_counter() - t0)
    return out


def run() -> list[str]:
    """Measure and return the lines to print (measured beside target; no pass/fail)."""
    ups, downs, versions = measure_env()
    lines = [
        f"  nats-server {versions.get('nats-server', '?')}, toxiproxy {versions.get('toxiproxy', '?')}",
        _line("environment up to ready (servers, proxy, INFO)", ups, TARGET_UP),
        _line("environment teardown", downs, TARGET_DOWN),
    ]
    lines.append(_line("`make setup`, second run", measure_setup(), TARGET_SETUP))
    return lines
