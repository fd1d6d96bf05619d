"""The gate's decisions, as pure functions of values: journals in, a `GateResult` out.

Strict in both directions (like strict xfail): a finding no applicable known issue
explains fails the gate (*new*, a regression), and so does an applicable known issue
that no longer reproduces where its scenarios ran (*stale*: narrow its range). Reruns
find flaky scenarios (verdicts that disagree); a flaky scenario fails unless every
finding is explained by issues marked `flaky` with a reason. `error` and `inconclusive`
fail: a gate that could not look has not passed.

Exit status: 0 every finding known; 1 new, stale, flaky or inconclusive; 2 an `error`
verdict (the harness or the environment broke: retry the gate, the client is not judged).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, Mapping, Sequence

from harness.errors import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE
from harness.journal import Journal
from harness.known_issues import EMPTY, KnownIssue, KnownIssues, Target, target_of

# Scenario statuses. `known`, `known-flaky` and `passed` pass the gate; the rest fail it.
PASSING = ("passed", "known", "known-flaky")
FAILING = ("new", "stale", "flaky", "inconclusive", "error")


@dataclasses.dataclass(frozen=True)
class ScenarioDecision:
    """One scenario over all its attempts (the first run and the reruns)."""

    id: str
    status: str  # passed | known | known-flaky | new | flaky | inconclusive | error
    verdicts: tuple[str, ...]  # one per attempt, in order
    checks: tuple[str, ...]  # checks that found something, in any attempt
    issues: tuple[str, ...]  # known issues that explain those findings
    unexplained: tuple[str, ...]  # checks no applicable known issue explains
    summary: str  # first finding or reason, one line
    replay: str

    @property
    def flaky(self) -> bool:
        return len(set(self.verdicts)) > 1


@dataclasses.dataclass(frozen=True)
class IssueDecision:
    """What this run says about one known issue."""

    id: str
    title: str
    status: str  # reproduced | stale | not-exercised | unseen-flaky | out-of-range
    scenarios: tuple[str, ...]  # scenario ids that ran and that its patterns match
    message: str


@dataclasses.dataclass(frozen=True)
class GateResult:
    target: Target
    scenarios: tuple[ScenarioDecision, ...]
    issues: tuple[IssueDecision, ...]
    attempts: int  # journals considered (1 + reruns)
    known: KnownIssues = EMPTY  # the file judged against (titles, links, repros for the reports)

    def with_status(self, *statuses: str) -> tuple[ScenarioDecision, ...]:
        return tuple(d for d in self.scenarios if d.status in statuses)

    def stale(self) -> tuple[IssueDecision, ...]:
        return tuple(i for i in self.issues if i.status == "stale")

    def by_id(self) -> dict[str, ScenarioDecision]:
        return {d.id: d for d in self.scenarios}

    @property
    def passed(self) -> bool:
        return not self.with_status(*FAILING) and not self.stale()

    def exit_status(self) -> int:
        if self.with_status("error"):
            return EXIT_USAGE
        return EXIT_CLEAN if self.passed else EXIT_FINDINGS


def _checks(record: Mapping[str, Any]) -> list[str]:
    return [f["check"] for f in record.get("findings", ())]


def decide_scenario(sid: str, attempts: Sequence[Mapping[str, Any]], applicable: Sequence[KnownIssue]) -> ScenarioDecision:
    """The status of one scenario from its attempts' records."""
    verdicts = tuple(r["verdict"] for r in attempts)
    checks: list[str] = []
    for r in attempts:
        for c in _checks(r):
            if c not in checks:
                checks.append(c)
    issues: list[str] = []
    unexplained: list[str] = []
    for c in checks:
        why = [ki for ki in applicable if ki.explains(sid, c)]
        if not why:
            unexplained.append(c)
        issues += [ki.id for ki in why if ki.id not in issues]
    first = next((r for r in attempts if r["verdict"] != "passed"), attempts[0])
    summary = first["findings"][0]["summary"] if first.get("findings") else first.get("reason", "")
    if "error" in verdicts:
        status = "error"
    elif "inconclusive" in verdicts:
        status = "inconclusive"
    elif set(verdicts) == {"passed"}:
        status = "passed"
    elif set(verdicts) == {"not_applicable"}:
        status = "not_applicable"  # the target lacks the flow: nothing to judge, nothing to fail
    elif unexplained:
        status = "new"
    elif len(set(verdicts)) > 1:
        # Flaky passes only if every finding is explained by an issue that says it is flaky.
        flaky_ok = all(any(ki.flaky and ki.explains(sid, c) for ki in applicable) for c in checks)
        status = "known-flaky" if flaky_ok else "flaky"
    else:
        status = "known"
    return ScenarioDecision(id=sid, status=status, verdicts=verdicts, checks=tuple(checks), issues=tuple(issues),
                            unexplained=tuple(unexplained), summary=summary.splitlines()[0] if summary else "",
                            replay=first.get("replay", ""))


def decide_issue(ki: KnownIssue, target: Target, decisions: Mapping[str, ScenarioDecision],
                 attempts: Mapping[str, Sequence[Mapping[str, Any]]]) -> IssueDecision:
    """Did a known issue reproduce where its scenarios ran?"""
    if not ki.applies_to(target):
        return IssueDecision(ki.id, ki.title, "out-of-range", (), f"{ki.id} does not apply to {target}")
    ran = tuple(sid for sid in decisions if ki.matches(sid))
    looked = [sid for sid in ran if decisions[sid].status not in ("error", "inconclusive")]
    if not looked:
        why = "no scenario it names ran" if not ran else "its scenarios could not look (error/inconclusive)"
        return IssueDecision(ki.id, ki.title, "not-exercised", ran, f"{ki.id} not exercised: {why}")
    seen = [sid for sid in looked if any(set(_checks(r)) & ki.checks for r in attempts[sid])]
    if seen:
        return IssueDecision(ki.id, ki.title, "reproduced", tuple(seen), f"{ki.id} reproduced in {len(seen)} scenario(s)")
    if ki.flaky:
        # A flaky issue can stay unseen by chance; failing on it would make the gate flaky.
        return IssueDecision(ki.id, ki.title, "unseen-flaky", tuple(looked),
                             f"{ki.id} (flaky) not seen in {len(looked)} scenario(s) this run")
    return IssueDecision(
        ki.id, ki.title, "stale", tuple(looked),
        f"{ki.id} no longer reproduces on {target} ({', '.join(looked)} found nothing in "
        f"{', '.join(sorted(ki.checks))}): narrow its range",
    )


def decide(journals: Sequence[Journal], known: KnownIssues = EMPTY) -> GateResult:
    """The gate's verdict on the first run (`journals[0]`) and its reruns (the rest)."""
    if not journals:
        raise ValueError("decide() needs at least the first run's journal")
    target = target_of(journals[0].header)
    applicable = known.applicable(target)
    attempts: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for j in journals:
        for r in j.records:
            attempts[r["id"]].append(r)
    decisions = {sid: decide_scenario(sid, rs, applicable) for sid, rs in sorted(attempts.items())}
    issues = tuple(decide_issue(ki, target, decisions, attempts) for ki in known.issues)
    return GateResult(target=target, scenarios=tuple(decisions.values()), issues=issues, attempts=len(journals),
                      known=known)


def to_rerun(journal: Journal) -> tuple[Mapping[str, Any], ...]:
    """Records of a run that the gate runs again: every one that did not pass (a flow the target
    lacks is not run again: it would be lacking again)."""
    return tuple(r for r in journal.records if r["verdict"] not in ("passed", "not_applicable"))


# -- gate.md ---------------------------------------------------------------------------------


def markdown(result: GateResult, *, run_id: str = "", journal_path: str = "") -> str:
    """gate.md: new findings, could-not-look, stale issues, flaky, known (one line each)."""
    verdict = "PASSED" if result.passed else "FAILED"
    counts = {s: len(result.with_status(s)) for s in ("passed", "known", "known-flaky", "new", "flaky", "inconclusive", "error")}
    lines = [
        f"# nats-chaos gate {verdict}" + (f" — run {run_id}" if run_id else ""),
        "",
        f"Target: **{result.target}** · {len(result.scenarios)} scenario(s) · {result.attempts - 1} rerun(s) of the "
        "non-passing ones",
        "",
        " · ".join(f"{k}: {v}" for k, v in counts.items()) + f" · stale known issues: {len(result.stale())}",
        "",
    ]
    new = result.with_status("new")
    lines.append(f"## New findings ({len(new)})")
    lines.append("")
    for d in new:
        lines.append(f"- `{d.id}` ({'/'.join(d.verdicts)}): {', '.join(d.unexplained)} not explained by a known issue"
                     f" for this target — {d.summary}")
        if d.replay:
            lines.append(f"  - replay: `{d.replay}`")
    if not new:
        lines.append("None.")
    looked_not = result.with_status("error", "inconclusive")
    if looked_not:
        lines += ["", f"## Could not look ({len(looked_not)}): error or inconclusive", ""]
        for d in looked_not:
            lines.append(f"- `{d.id}` {d.status} ({'/'.join(d.verdicts)}): {d.summary}")
            if d.replay:
                lines.append(f"  - replay: `{d.replay}`")
    stale = result.stale()
    lines += ["", f"## Stale known issues ({len(stale)})", ""]
    lines += [f"- {i.message}" for i in stale] or ["None."]
    flaky = result.with_status("flaky", "known-flaky")
    lines += ["", f"## Flaky scenarios ({len(flaky)})", ""]
    for d in flaky:
        ok = "marked flaky in " + ", ".join(d.issues) if d.status == "known-flaky" else "not marked flaky: fails the gate"
        lines.append(f"- `{d.id}` verdicts {'/'.join(d.verdicts)} ({ok})")
    if not flaky:
        lines.append("None.")
    known = result.with_status("known")
    lines += ["", f"## Known findings ({len(known)})", ""]
    lines += [f"- `{d.id}`: {', '.join(d.issues)} ({', '.join(d.checks)})" for d in known] or ["None."]
    other = [i for i in result.issues if i.status in ("not-exercised", "unseen-flaky", "out-of-range")]
    if other:
        lines += ["", "Known issues not judged here: " + "; ".join(i.message for i in other)]
    if journal_path:
        lines += ["", f"Journal: `{journal_path}`"]
    return "\n".join(lines) + "\n"
