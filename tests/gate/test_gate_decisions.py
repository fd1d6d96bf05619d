"""Every gate decision on journals built in the test: known, new, stale, flaky,
out-of-range version, error and inconclusive."""

from __future__ import annotations

from pathlib import Path

from harness.gate import decide, markdown
from harness.journal import Journal
from harness.known_issues import KnownIssue, KnownIssues, parse_range

PY216 = {"run_id": "r", "seed": 1, "nats_py": "2.16.0", "nats_server": "v2.12.8"}
PY217 = {**PY216, "nats_py": "2.17.0"}


def rec(sid: str, verdict: str = "passed", *checks: str, reason: str = "") -> dict:
    return {"id": sid, "verdict": verdict, "reason": reason or (f"{len(checks)} finding(s)" if checks else ""),
            "findings": [{"check": c, "summary": f"{c}: something left", "evidence": "e"} for c in checks],
            "replay": f"harness run 's.yaml::{sid}' --seed 1" if verdict != "passed" else ""}


def journal(header: dict, *records: dict) -> Journal:
    return Journal(path=Path("/r/journal.jsonl"), header=header, records=records)


def ki(id: str, scenarios: list[str], checks: list[str], client: str = "nats-py>=2.16.0,<=2.16.0",
       flaky: bool = False, server: str = "*") -> KnownIssue:
    return KnownIssue(id=id, title=f"{id} title", scenarios=tuple(scenarios), checks=frozenset(checks),
                      client=parse_range(client, side="client"), server=parse_range(server, side="server"),
                      flaky=flaky, reason="racy" if flaky else "")


KNOWN = KnownIssues(Path("k.yaml"), (
    ki("KI-001", ["objectstore.get[disconnect.reset_peer@transfer]"], ["tasks", "consumers"]),
    ki("KI-004", ["next.fetch[drain.unsubscribe@*]"], ["iterators"]),
))
GET = "objectstore.get[disconnect.reset_peer@transfer]"
FETCH = "next.fetch[drain.unsubscribe@waiting]"


def test_every_finding_known_passes() -> None:
    first = journal(PY216, rec(GET, "failed", "tasks", "tasks", "consumers"), rec(FETCH, "failed", "iterators"), rec("a[none]"))
    again = journal(PY216, rec(GET, "failed", "tasks"), rec(FETCH, "failed", "iterators"))
    r = decide([first, again], KNOWN)
    assert {d.id: d.status for d in r.scenarios} == {GET: "known", FETCH: "known", "a[none]": "passed"}
    assert r.by_id()[GET].issues == ("KI-001",) and r.by_id()[GET].checks == ("tasks", "consumers")
    assert [i.status for i in r.issues] == ["reproduced", "reproduced"]
    assert r.passed and r.exit_status() == 0


def test_a_finding_in_a_check_the_issue_does_not_explain_is_new() -> None:
    r = decide([journal(PY216, rec(GET, "failed", "tasks", "recovery"), rec(FETCH, "failed", "iterators"))], KNOWN)
    d = r.by_id()[GET]
    assert d.status == "new" and d.unexplained == ("recovery",) and d.issues == ("KI-001",)
    assert r.exit_status() == 1
    md = markdown(r)
    assert "## New findings (1)" in md and "recovery not explained" in md and f"replay: `harness run 's.yaml::{GET}'" in md


def test_a_finding_in_a_scenario_no_issue_names_is_new() -> None:
    r = decide([journal(PY216, rec("kv.get[none]", "failed", "tasks"), rec(GET, "failed", "tasks"),
                        rec(FETCH, "failed", "iterators"))], KNOWN)
    assert r.by_id()["kv.get[none]"].status == "new" and not r.passed


def test_a_known_issue_outside_the_target_version_explains_nothing() -> None:
    r = decide([journal(PY217, rec(GET, "failed", "tasks"), rec(FETCH, "passed"))], KNOWN)
    assert r.by_id()[GET].status == "new"
    assert [i.status for i in r.issues] == ["out-of-range", "out-of-range"]  # and so never stale either
    assert r.exit_status() == 1


def test_another_implementation_is_out_of_range_too() -> None:
    go = {"run_id": "r", "target": {"client": {"impl": "nats.go", "version": "v1.41.0"}, "server": {"version": "2.12.8"}}}
    r = decide([journal(go, rec(FETCH, "failed", "iterators"))], KNOWN)
    assert r.by_id()[FETCH].status == "new"


def test_a_known_issue_that_no_longer_reproduces_is_stale() -> None:
    r = decide([journal(PY216, rec(GET, "passed"), rec(FETCH, "failed", "iterators"))], KNOWN)
    assert [(i.id, i.status) for i in r.issues] == [("KI-001", "stale"), ("KI-004", "reproduced")]
    assert r.stale()[0].message.startswith(f"KI-001 no longer reproduces on nats-py 2.16.0 on nats-server 2.12.8 ({GET}")
    assert r.stale()[0].message.endswith("narrow its range")
    assert not r.passed and r.exit_status() == 1
    assert "## Stale known issues (1)" in markdown(r)


def test_reproducing_in_another_check_than_listed_is_still_stale() -> None:
    r = decide([journal(PY216, rec(GET, "failed", "loop"), rec(FETCH, "failed", "iterators"))], KNOWN)
    assert r.issues[0].status == "stale" and r.by_id()[GET].status == "new"


def test_an_issue_whose_scenarios_did_not_run_is_not_judged() -> None:
    r = decide([journal(PY216, rec(FETCH, "failed", "iterators"))], KNOWN)
    assert r.issues[0].status == "not-exercised" and r.passed


def test_disagreeing_verdicts_are_flaky_and_fail_unless_marked() -> None:
    runs = [journal(PY216, rec(GET, "failed", "tasks"), rec(FETCH, "failed", "iterators")),
            journal(PY216, rec(GET, "passed"), rec(FETCH, "failed", "iterators"))]
    r = decide(runs, KNOWN)
    d = r.by_id()[GET]
    assert d.status == "flaky" and d.verdicts == ("failed", "passed") and d.flaky
    assert r.exit_status() == 1
    assert "not marked flaky: fails the gate" in markdown(r)
    marked = KnownIssues(Path("k"), (ki("KI-001", [GET], ["tasks"], flaky=True), KNOWN.issues[1]))
    r2 = decide(runs, marked)
    assert r2.by_id()[GET].status == "known-flaky" and r2.passed and r2.exit_status() == 0


def test_a_flaky_issue_unseen_this_run_is_not_stale() -> None:
    marked = KnownIssues(Path("k"), (ki("KI-001", [GET], ["tasks"], flaky=True),))
    r = decide([journal(PY216, rec(GET, "passed"))], marked)
    assert r.issues[0].status == "unseen-flaky" and r.passed


def test_error_fails_with_2_and_inconclusive_with_1() -> None:
    inc = decide([journal(PY216, rec(GET, "failed", "tasks"), rec(FETCH, "inconclusive", reason="trigger never fired"))], KNOWN)
    assert inc.by_id()[FETCH].status == "inconclusive" and inc.exit_status() == 1
    assert inc.issues[1].status == "not-exercised"  # it could not look: not stale either
    err = decide([journal(PY216, rec(GET, "failed", "tasks"), rec(FETCH, "failed", "iterators")),
                  journal(PY216, rec(GET, "error", reason="Toxiproxy API unreachable"), rec(FETCH, "failed", "iterators"))],
                 KNOWN)
    assert err.by_id()[GET].status == "error" and err.exit_status() == 2
    assert "## Could not look (1)" in markdown(err)


def test_gate_md_sections_come_in_order() -> None:
    runs = [journal(PY216, rec("n[x]", "failed", "tasks"), rec(GET, "failed", "tasks"), rec(FETCH, "failed", "iterators"),
                    rec("f[x]", "failed", "iterators")),
            journal(PY216, rec("n[x]", "failed", "tasks"), rec(GET, "failed", "tasks"), rec(FETCH, "failed", "iterators"),
                    rec("f[x]", "passed"))]
    md = markdown(decide(runs, KNOWN))
    order = [md.index(h) for h in ("## New findings", "## Stale known issues", "## Flaky scenarios", "## Known findings")]
    assert order == sorted(order) and md.startswith("# nats-chaos gate FAILED")
