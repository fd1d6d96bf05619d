"""known_issues/known_issues.yaml and known_issues/README.md say the same thing.

The README's tables are what people read; the YAML is what the gate reads. These tests
fail when one changes without the other: an issue added to one only, a repro moved, a
reference scenario attributed to another issue, a check that fires but is not explained,
or a pattern that no longer matches any scenario the reference set expands to.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from harness.checks import CHECKS
from harness.known_issues import load_known_issues
from harness.scenario import load_paths

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "known_issues/README.md").read_text()
KNOWN = load_known_issues(ROOT / "known_issues/known_issues.yaml")
REFERENCE_IDS = {sc.id for sc in load_paths([ROOT / "scenarios"])}


def _section(title: str) -> str:
    start = README.index(title)
    nxt = README.find("\n## ", start + 1)
    return README[start: nxt if nxt >= 0 else None]


def _rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:]  # without the heading row


def issue_table() -> dict[str, str]:
    """README's main tables (nats-py's, nats.go's): KI id -> script or program path."""
    out = {}
    for cells in _rows(README[: README.index("### Explored")]):
        m = re.match(r"\[(KI-\d+)\]", cells[0])
        if m:
            out[m.group(1)] = re.search(r"\(([^)]+(?:repro\.py|main\.go))\)", cells[-1]).group(1)  # Python or Go
    return out


def reference_table() -> list[tuple[list[str], set[str], set[str]]]:
    """README's "Which scenario shows it" (the default suite): (scenario ids, checks that fire, issues)."""
    out = []
    for cells in _rows(_section("## Which scenario shows it")):
        scenarios = re.findall(r"`([^`]+)`", cells[0])
        no_parens = re.sub(r"\([^)]*\)", "", cells[1])
        checks = {seg.split()[0] for seg in no_parens.split(",") if seg.split() and seg.split()[0] in CHECKS}
        out.append((scenarios, checks, set(re.findall(r"KI-\d+", cells[2]))))
    return out


def test_the_readme_table_and_the_yaml_list_the_same_issues_and_scripts() -> None:
    table = issue_table()
    assert set(table) == {ki.id for ki in KNOWN.issues}
    for ki in KNOWN.issues:
        assert ki.repro == table[ki.id], ki.id
        assert (ROOT / "known_issues" / ki.repro).is_file(), ki.repro


def test_each_reference_row_is_what_the_yaml_says() -> None:
    rows = reference_table()
    assert rows, "the README's reference table was not found"
    for scenarios, checks, issues in rows:
        assert scenarios and checks and issues, (scenarios, checks, issues)
        for sid in scenarios:
            assert sid in REFERENCE_IDS, f"README names {sid}, which the reference set does not expand to"
            for issue in issues:
                assert KNOWN.by_id(issue).matches(sid), f"README: {sid} shows {issue}; the YAML does not say so"
            for check in checks:
                assert any(KNOWN.by_id(i).explains(sid, check) for i in issues), \
                    f"README: {check} fires on {sid}; no issue of that row explains it in the YAML"


def test_each_yaml_pattern_is_a_row_of_the_readme_and_matches_a_reference_scenario() -> None:
    rows = reference_table()
    for ki in KNOWN.issues:
        for pattern in ki.scenarios:
            one = dataclasses.replace(ki, scenarios=(pattern,))
            matched = [sid for sid in REFERENCE_IDS if one.matches(sid)]
            assert matched, f"{ki.id}: {pattern!r} matches no scenario of the reference set"
            for sid in matched:
                assert any(sid in s and ki.id in i for s, _, i in rows), f"{ki.id} on {sid}: not in the README's table"


def test_issues_no_scenario_reaches_are_the_ones_the_readme_says() -> None:
    line = next(x for x in README.splitlines() if x.startswith("Not yet reached by a reference scenario"))
    para = README[README.index(line):].split("\n\n")[0]
    unreached = set(re.findall(r"KI-\d+", para))
    assert unreached == {ki.id for ki in KNOWN.issues if not ki.scenarios}
