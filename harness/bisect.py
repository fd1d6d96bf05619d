"""Bisect: the first release of a client in which one scenario's verdict turns.

`harness bisect SCENARIO_ID --client nats-py --good V1 --bad V2` lists the releases
published between V1 and V2 (the registry's own list), runs the scenario on V1 and V2 to
confirm they differ, then binary-searches the releases between them. Every step is an
ordinary `harness run` of that one scenario with the same seed, so each has its journal.

`not_applicable` is a verdict like any other here: a release that lacks the flow differs
from one that has it, and bisect says so rather than guessing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.errors import HarnessError


class BisectError(HarnessError):
    """Bisect cannot start or cannot decide (same verdict at both ends, a run that errored)."""


@dataclasses.dataclass(frozen=True)
class Step:
    version: str
    verdict: str
    line: str
    journal: str


@dataclasses.dataclass(frozen=True)
class BisectResult:
    first_turned: Step  # the first release whose verdict differs from the good end's
    last_same: Step  # the release just before it
    steps: tuple[Step, ...]  # in the order they ran


def between(published: Sequence[str], good: str, bad: str, key: Callable[[str], Any],
            exists: Callable[[str], bool] | None = None) -> list[str]:
    """The published releases from `good` to `bad` inclusive, in release order (either direction).

    `exists` asks the registry about an end its list leaves out (the Go module proxy's list
    omits a few nats.go releases that still resolve, e.g. v1.41.0): such an end is bisected too.
    """
    extra = [v for v in (good, bad) if v not in published and exists is not None and exists(v)]
    ordered = sorted([*published, *extra], key=key)
    missing = [v for v in (good, bad) if v not in ordered]
    if missing:
        raise BisectError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not a published release",
                          hint=f"published: {ordered[0]} … {ordered[-1]}" if ordered else "")
    i, j = ordered.index(good), ordered.index(bad)
    return ordered[i: j + 1] if i <= j else list(reversed(ordered[j: i + 1]))


def bisect(versions: Sequence[str], verdict_of: Callable[[str], Step]) -> BisectResult:
    """Binary search over `versions` (good end first, bad end last) for the first whose verdict
    differs from the good end's. Pure search: `verdict_of` runs (or, in tests, looks up) one."""
    if len(versions) < 2:
        raise BisectError("bisect needs two different releases", hint="pass --good and --bad")
    steps: list[Step] = []

    def run(v: str) -> Step:
        s = verdict_of(v)
        steps.append(s)
        return s

    good, bad = run(versions[0]), run(versions[-1])
    if good.verdict == bad.verdict:
        raise BisectError(
            f"the verdict is {good.verdict} on both {versions[0]} and {versions[-1]}: nothing to bisect",
            evidence=f"{versions[0]}: {good.journal}\n{versions[-1]}: {bad.journal}",
            hint="pick releases whose verdicts differ (a `harness matrix` over a few releases shows where)",
        )
    lo, hi = 0, len(versions) - 1
    known = {0: good, hi: bad}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        s = run(versions[mid])
        known[mid] = s
        if s.verdict == good.verdict:
            lo = mid
        else:
            hi = mid
    return BisectResult(first_turned=known[hi], last_same=known[lo], steps=tuple(steps))


def step_from_journal(version: str, journal: Path | None, scenario_id: str) -> Step:
    if journal is None or not journal.is_file():
        raise BisectError(f"the run on {version} wrote no journal", hint="see its run.log next to the journal folder")
    recs = [r for r in json.loads(journal.read_text())["records"] if r["id"] == scenario_id]
    if not recs:
        raise BisectError(f"the run on {version} did not run {scenario_id}", hint="`harness list` shows the scenario ids")
    r = recs[0]
    if r["verdict"] == "error":
        raise BisectError(f"{scenario_id} ended in error on {version}: {r.get('reason', '')}",
                          evidence=str(journal), hint="an environment error says nothing about the release; rerun")
    f = r["findings"][0] if r.get("findings") else None
    line = f"[{f['check']}] {f['summary']}" if f else r.get("reason", "")
    return Step(version, r["verdict"], line, str(journal))
