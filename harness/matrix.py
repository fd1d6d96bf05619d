"""Side by side: the same scenarios against several targets, one comparison.

Each target combination (client × server) is an ordinary `harness run` in a process of its
own (its own environment, its own journal), run in parallel where cores allow, all with
the same seed. The first target is the baseline: a cell that differs from it is *regressed*
(the baseline passed, this one does not) or *fixed* (the other way round).

`compare()` and `render_markdown()` are pure: they take journals' records and are unit-tested
on values built in the test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from harness.errors import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE

NOT_CLEAN = ("failed", "inconclusive", "error")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One scenario's verdict on one target, against the baseline's."""

    verdict: str  # passed | failed | inconclusive | error | not_applicable | missing
    change: str  # "" (same as the baseline, or the baseline itself) | "regressed" | "fixed" | "changed"
    line: str  # the first finding's one line (or the reason), "" when passed


@dataclasses.dataclass(frozen=True)
class Comparison:
    targets: tuple[str, ...]  # labels, the baseline first
    scenarios: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]  # (scenario, target) -> cell

    def changes(self) -> list[tuple[str, str, Cell]]:
        return [(s, t, c) for (s, t), c in sorted(self.cells.items()) if c.change]


def _line(rec: dict[str, Any]) -> str:
    if rec.get("findings"):
        f = rec["findings"][0]
        return f"[{f['check']}] {f['summary']}"
    return rec.get("reason", "") if rec.get("verdict") != "passed" else ""


def classify(base: str, other: str) -> str:
    """How `other` differs from the baseline's verdict `base`: "", regressed, fixed or changed."""
    if base == other:
        return ""
    if base == "passed" and other in NOT_CLEAN:
        return "regressed"
    if base in NOT_CLEAN and other == "passed":
        return "fixed"
    return "changed"  # e.g. applicable on one release only, or failed vs inconclusive


def compare(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> Comparison:
    """`runs`: (target label, records) per target, the baseline first."""
    labels = tuple(label for label, _ in runs)
    by_target = [{r["id"]: r for r in recs} for _, recs in runs]
    scenarios = tuple(sorted(set().union(*(set(m) for m in by_target)) if by_target else ()))
    cells: dict[tuple[str, str], Cell] = {}
    for sid in scenarios:
        base = by_target[0].get(sid)
        base_v = base["verdict"] if base else "missing"
        for i, (label, recs) in enumerate(zip(labels, by_target)):
            rec = recs.get(sid)
            v = rec["verdict"] if rec else "missing"
            cells[(sid, label)] = Cell(v, "" if i == 0 else classify(base_v, v), _line(rec) if rec else "")
    return Comparison(labels, scenarios, cells)


def render_markdown(cmp: Comparison, title: str = "nats-chaos matrix") -> str:
    head = ["scenario", *(f"{t}{' (baseline)' if i == 0 else ''}" for i, t in enumerate(cmp.targets))]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sid in cmp.scenarios:
        row = [f"`{sid}`"]
        for t in cmp.targets:
            c = cmp.cells[(sid, t)]
            mark = f" **{c.change}**" if c.change else ""
            detail = f"<br>{c.line.replace('|', '/')[:160]}" if c.line and c.verdict != "passed" else ""
            row.append(f"{c.verdict}{mark}{detail}")
        lines.append("| " + " | ".join(row) + " |")
    ch = cmp.changes()
    lines += ["", f"{sum(1 for *_, c in ch if c.change == 'regressed')} regressed, "
                  f"{sum(1 for *_, c in ch if c.change == 'fixed')} fixed, "
                  f"{sum(1 for *_, c in ch if c.change == 'changed')} changed against {cmp.targets[0] if cmp.targets else '-'}"]
    return "\n".join(lines) + "\n"


def exit_status(cells_exit: Sequence[int], cmp: Comparison) -> int:
    """As for `run`: 2 if any run could not look (exit 2, an `error`), 1 on findings anywhere, else 0."""
    verdicts = {c.verdict for c in cmp.cells.values()}
    if any(code not in (0, 1) for code in cells_exit) or "error" in verdicts:
        return EXIT_USAGE
    if verdicts & {"failed", "inconclusive"} or any(code == 1 for code in cells_exit):
        return EXIT_FINDINGS
    return EXIT_CLEAN


# -- running the cells -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CellRun:
    client: str
    server: str | None
    label: str
    reports: Path
    exit: int
    journal: Path | None
    wall: float


def harness_argv() -> list[str]:
    return [sys.executable, "-m", "harness"]


def run_cell(client: str, server: str | None, label: str, reports: Path, run_args: Sequence[str], log: Path) -> CellRun:
    """One `harness run` for one target, in its own process; its journal is under `reports`."""
    argv = [*harness_argv(), "run", *run_args, "--client", client, "--reports", str(reports)]
    if server:
        argv += ["--server", server]
    t = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={k: v for k, v in os.environ.items() if k != "NATS_CHAOS_RUN_ID"}).returncode
    latest = reports / "latest" / "journal.json"
    return CellRun(client, server, label, reports, code, latest if latest.is_file() else None, time.monotonic() - t)


def run_matrix(targets: Sequence[tuple[str, str | None, str]], run_args: Sequence[str], out_dir: Path, jobs: int,
               progress: Any = print) -> tuple[list[CellRun], Comparison]:
    """Run every (client, server, label) with `run_args`; compare their journals."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def one(i: int, t: tuple[str, str | None, str]) -> CellRun:
        client, server, label = t
        cell_dir = out_dir / f"{i:02d}-{_slug(label)}"
        cell_dir.mkdir(parents=True, exist_ok=True)
        with lock:
            progress(f"matrix: started {label}")
        r = run_cell(client, server, label, cell_dir, run_args, cell_dir / "run.log")
        with lock:
            progress(f"matrix: {label}: exit {r.exit} in {r.wall:.0f}s ({r.journal or 'no journal: see ' + str(cell_dir / 'run.log')})")
        return r

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = list(pool.map(lambda it: one(*it), enumerate(targets)))
    pairs = []
    for r in runs:
        recs = json.loads(r.journal.read_text())["records"] if r.journal else []
        pairs.append((r.label, recs))
    return runs, compare(pairs)


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9.\-]+", "_", text).strip("_")[:60]


def default_jobs(cells: int) -> int:
    """Cells at once: one per core (a scenario is mostly waiting, but every cell runs two servers)."""
    return max(1, min(cells, os.cpu_count() or 1))
