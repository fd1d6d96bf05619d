"""Two runs compared: regressions, fixes and changed findings, on journals built in the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.diff import diff, markdown
from harness.journal import Journal, JournalWriter


def rec(sid: str, verdict: str = "passed", *checks: str) -> dict:
    return {"id": sid, "verdict": verdict, "reason": "", "replay": f"harness run 's.yaml::{sid}'" if verdict != "passed" else "",
            "findings": [{"check": c, "summary": f"{c} left", "evidence": ""} for c in checks],
            "timings": {"wall": 1.0, "inherent": 1.0, "overhead": 0.0}, "events": []}


def j(version: str, *records: dict) -> Journal:
    return Journal(Path("/x/journal.jsonl"), {"nats_py": version, "nats_server": "v2.12.8"}, records)


OLD = j("2.16.0", rec("a[none]"), rec("b[x]", "failed", "tasks"), rec("c[x]", "failed", "iterators"),
        rec("d[x]", "failed", "tasks"), rec("gone[x]"))
NEW = j("2.17.0", rec("a[none]", "failed", "tasks"), rec("b[x]"), rec("c[x]", "failed", "iterators", "tasks"),
        rec("d[x]", "failed", "tasks"), rec("added[x]", "failed", "loop"))


def test_regressed_fixed_changed_and_unchanged() -> None:
    d = diff(OLD, NEW)
    assert [c.id for c in d.regressed] == ["a[none]"] and [c.id for c in d.fixed] == ["b[x]"]
    assert [(c.id, c.added_checks) for c in d.changed] == [("c[x]", ("tasks",))]
    assert d.same == 1 and d.only_old == ("gone[x]",) and d.only_new == ("added[x]",)
    assert [c.id for c in d.worse] == ["a[none]", "c[x]"] and d.exit_status() == 1
    md = markdown(d)
    assert "nats-py 2.17.0" in md and "replay: `harness run 's.yaml::a[none]'`" in md and "; new: tasks" in md


def test_only_fixes_and_fewer_findings_are_no_regression() -> None:
    better = j("2.17.0", rec("a[none]"), rec("b[x]"), rec("c[x]", "failed"), rec("d[x]", "failed", "tasks"))
    d = diff(OLD, better)
    assert d.exit_status() == 0 and [c.id for c in d.changed] == ["c[x]"] and not d.worse


def test_harness_diff_command(tmp_path: Path) -> None:
    for name, journal in (("old", OLD), ("new", NEW)):
        w = JournalWriter(tmp_path / name)
        w.header(dict(journal.header, run_id=name))
        for r in journal.records:
            w.record(r)
        w.close()
    exe = Path(sys.executable).with_name("harness")
    r = subprocess.run([str(exe), "diff", str(tmp_path / "old"), str(tmp_path / "new"), "--out", str(tmp_path / "d.md")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stdout.startswith("# nats-chaos diff: REGRESSED") and "Note: NEW is a partial run" in r.stdout
    same = subprocess.run([str(exe), "diff", str(tmp_path / "old"), str(tmp_path / "old")], capture_output=True, text=True)
    assert same.returncode == 0 and "no regression" in same.stdout
