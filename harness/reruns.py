"""The gate's runs: the suite once, then every non-passing scenario again, N times.

Each run is a plain `harness run` in a subprocess (its own journal, its own environment,
the same seed, so a rerun is the replay the report promises); the gate reads journals
only. Reruns land in `reports/<run-id>/reruns/<n>/`.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from harness.errors import EXIT_USAGE, HarnessError
from harness.gate import to_rerun
from harness.journal import Journal, JournalError, claim_run_dir, read_journal

RERUNS_DIR = "reruns"


@dataclasses.dataclass(frozen=True)
class GateRuns:
    """What the gate ran: the first run and its reruns, with the time each took."""

    run_dir: Path
    first: Journal
    reruns: tuple[Journal, ...]
    run_seconds: float  # wall time inside `harness run` subprocesses

    @property
    def journals(self) -> tuple[Journal, ...]:
        return (self.first, *self.reruns)


class RunFailed(HarnessError):
    """A `harness run` ended without a journal (usage or environment error before any scenario)."""

    def __init__(self, status: int, what: str) -> None:
        self.status = status
        super().__init__(f"{what} ended with exit status {status} and wrote no journal",
                         hint="its own error is printed above; the gate judged nothing")


def harness_run(args: Sequence[str], *, seed: int, reports: Path, run_id: str) -> tuple[int, float]:
    """Run `harness run ARGS` as a subprocess (output passed through); its status and wall time."""
    argv = [sys.executable, "-m", "harness.cli", "run", *args, "--seed", str(seed), "--reports", str(reports),
            "--run-id", run_id]
    # The gate writes its own step summary (gate.md); the runs must not add theirs.
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    t = time.monotonic()
    status = subprocess.run(argv, stdin=subprocess.DEVNULL, env=env).returncode
    return status, time.monotonic() - t


def run_gate(run_args: Sequence[str], rerun_args: Sequence[str], *, seed: int, reports: Path, reruns: int,
             say: Callable[[str], None] = print,
             run: Callable[..., tuple[int, float]] = harness_run) -> GateRuns:
    """The first run with `run_args`, then up to `reruns` runs of what did not pass (`rerun_args` + node ids)."""
    run_id = claim_run_dir(reports, datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{seed}-gate")
    run_dir = reports / run_id
    say(f"gate: run {run_id} (seed {seed}); then {reruns} rerun(s) of every non-passing scenario")
    status, seconds = run(run_args, seed=seed, reports=reports, run_id=run_id)
    first = _journal(run_dir, status, "the gate's run")
    journals: list[Journal] = []
    todo = to_rerun(first)
    for n in range(1, reruns + 1):
        if not todo:
            break
        nodes = [r.get("node") or r["id"] for r in todo]
        say(f"gate: rerun {n} of {reruns}: {len(nodes)} scenario(s)")
        status, secs = run([*rerun_args, *nodes], seed=seed, reports=run_dir / RERUNS_DIR, run_id=str(n))
        seconds += secs
        journals.append(_journal(run_dir / RERUNS_DIR / str(n), status, f"rerun {n}"))
    return GateRuns(run_dir=run_dir, first=first, reruns=tuple(journals), run_seconds=seconds)


def _journal(run_dir: Path, status: int, what: str) -> Journal:
    try:
        return read_journal(run_dir)
    except JournalError:
        raise RunFailed(status or EXIT_USAGE, what) from None


def find_reruns(run_dir: Path) -> tuple[Journal, ...]:
    """The reruns a gate left in a run directory (for `harness report` on a gate's run)."""
    d = run_dir / RERUNS_DIR
    if not d.is_dir():
        return ()
    out = []
    for sub in sorted((p for p in d.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)):
        try:
            out.append(read_journal(sub))
        except JournalError:
            continue
    return tuple(out)
