"""Two runs compared, scenario by scenario: what regressed, what was fixed, what changed.

Pure: two journals in, a `RunDiff` out (e.g. last release vs candidate, last night vs
tonight). A scenario regressed when it passed in OLD and does not in NEW, or when NEW
finds something in a check OLD did not. Scenarios present in one run only are listed,
never counted as regressions (a new scenario has no baseline).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from harness.journal import Journal
from harness.known_issues import target_of


@dataclasses.dataclass(frozen=True)
class Change:
    """One scenario whose outcome differs between the two runs."""

    id: str
    old: str  # verdict
    new: str
    old_checks: tuple[str, ...]
    new_checks: tuple[str, ...]
    summary: str  # NEW's first finding or reason (OLD's for a fix)
    replay: str  # NEW's replay command

    @property
    def added_checks(self) -> tuple[str, ...]:
        return tuple(c for c in self.new_checks if c not in self.old_checks)


@dataclasses.dataclass(frozen=True)
class RunDiff:
    old_target: str
    new_target: str
    regressed: tuple[Change, ...]  # passed -> not passed
    fixed: tuple[Change, ...]  # not passed -> passed
    changed: tuple[Change, ...]  # not passed in both, but verdict or checks differ
    only_old: tuple[str, ...]
    only_new: tuple[str, ...]
    same: int

    @property
    def worse(self) -> tuple[Change, ...]:
        """Regressions, and changed scenarios whose NEW run finds something OLD did not."""
        return self.regressed + tuple(c for c in self.changed if c.added_checks or _rank(c.new) > _rank(c.old))

    def exit_status(self) -> int:
        return 1 if self.worse else 0


def _rank(verdict: str) -> int:
    return {"passed": 0, "inconclusive": 1, "failed": 2, "error": 3}.get(verdict, 3)


def _checks(r: Mapping[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for f in r.get("findings", ()):
        if f["check"] not in out:
            out.append(f["check"])
    return tuple(out)


def _summary(r: Mapping[str, Any]) -> str:
    text = r["findings"][0]["summary"] if r.get("findings") else r.get("reason", "")
    return text.splitlines()[0] if text else ""


def diff(old: Journal, new: Journal) -> RunDiff:
    """Compare two runs by scenario id (the last record of an id wins, as in a rerun)."""
    o = {r["id"]: r for r in old.records}
    n = {r["id"]: r for r in new.records}
    regressed, fixed, changed = [], [], []
    same = 0
    for sid in sorted(set(o) & set(n)):
        a, b = o[sid], n[sid]
        c = Change(sid, a["verdict"], b["verdict"], _checks(a), _checks(b),
                   _summary(b) if b["verdict"] != "passed" else _summary(a), b.get("replay", ""))
        if a["verdict"] == "passed" and b["verdict"] != "passed":
            regressed.append(c)
        elif a["verdict"] != "passed" and b["verdict"] == "passed":
            fixed.append(c)
        elif a["verdict"] != b["verdict"] or set(c.old_checks) != set(c.new_checks):
            changed.append(c)
        else:
            same += 1
    return RunDiff(str(target_of(old.header)), str(target_of(new.header)), tuple(regressed), tuple(fixed),
                   tuple(changed), tuple(sorted(set(o) - set(n))), tuple(sorted(set(n) - set(o))), same)


def markdown(d: RunDiff, old_name: str = "OLD", new_name: str = "NEW") -> str:
    """The comparison as Markdown: regressions first (with replay commands), then the rest."""
    lines = [f"# nats-chaos diff: {'REGRESSED' if d.worse else 'no regression'}", "",
             f"- {old_name}: {d.old_target}", f"- {new_name}: {d.new_target}", "",
             f"regressed: {len(d.regressed)} · changed: {len(d.changed)} · fixed: {len(d.fixed)} · "
             f"unchanged: {d.same} · only in {old_name}: {len(d.only_old)} · only in {new_name}: {len(d.only_new)}", ""]
    lines += [f"## New failures ({len(d.regressed)})", ""]
    for c in d.regressed:
        lines.append(f"- `{c.id}` passed -> {c.new} ({', '.join(c.new_checks) or 'no finding'}): {c.summary}")
        if c.replay:
            lines.append(f"  - replay: `{c.replay}`")
    if not d.regressed:
        lines.append("None.")
    lines += ["", f"## Changed findings ({len(d.changed)})", ""]
    for c in d.changed:
        extra = f"; new: {', '.join(c.added_checks)}" if c.added_checks else ""
        gone = [x for x in c.old_checks if x not in c.new_checks]
        lines.append(f"- `{c.id}` {c.old} ({', '.join(c.old_checks) or '-'}) -> {c.new} "
                     f"({', '.join(c.new_checks) or '-'}){extra}{'; gone: ' + ', '.join(gone) if gone else ''}")
    if not d.changed:
        lines.append("None.")
    lines += ["", f"## Fixed ({len(d.fixed)})", ""]
    lines += [f"- `{c.id}` {c.old} ({', '.join(c.old_checks) or '-'}) -> passed" for c in d.fixed] or ["None."]
    if d.only_old or d.only_new:
        lines += ["", f"Only in {old_name}: " + (", ".join(f"`{x}`" for x in d.only_old) or "-"),
                  f"Only in {new_name}: " + (", ".join(f"`{x}`" for x in d.only_new) or "-")]
    return "\n".join(lines) + "\n"
