"""The journal as values: written line by line, read back whole or partial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.journal import Journal, JournalError, JournalWriter, read_journal, write_document
from harness.report import junit_xml, markdown_summary, write_outputs


def record(id: str, verdict: str = "passed", checks: tuple[str, ...] = ()) -> dict:
    return {
        "id": id, "flow": id.split("[")[0], "fault": "none", "trigger": "", "seed": 1, "verdict": verdict,
        "reason": f"{len(checks)} finding(s)" if checks else "",
        "findings": [{"check": c, "summary": f"{c} left something", "evidence": "stack"} for c in checks],
        "events": [{"t": 0.1, "source": "runner", "what": "prepared"}],
        "timings": {"wall": 1.0, "inherent": 0.9, "overhead": 0.1},
        "replay": f"harness run 's.yaml::{id}' --seed 1" if verdict != "passed" else "",
    }


def test_a_written_journal_reads_back_complete(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path / "run")
    w.header({"run_id": "run", "seed": 1})
    w.record(record("a[none]"))
    w.record(record("b[none]", "failed", ("tasks",)))
    w.infra({"summary": "toxiproxy died; restarted"})
    w.end(1)
    w.close()
    j = read_journal(tmp_path / "run")
    assert j.complete and j.exitstatus == 1 and j.header["seed"] == 1
    assert [r["id"] for r in j.records] == ["a[none]", "b[none]"]
    assert j.counts() == {"passed": 1, "failed": 1, "inconclusive": 0, "error": 0, "not_applicable": 0}
    assert j.infra[0]["summary"].startswith("toxiproxy died")


def test_a_killed_run_reads_as_partial_keeping_every_whole_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    w = JournalWriter(run)
    w.header({"run_id": "run", "seed": 1})
    w.record(record("a[none]"))
    w.close()
    with open(run / "journal.jsonl", "a") as f:  # the kill cut the second record's write short
        f.write(json.dumps({"kind": "record", **record("b[none]")})[:40])
    j = read_journal(run / "journal.jsonl")
    assert not j.complete and j.exitstatus is None and j.damaged_lines == 1
    assert [r["id"] for r in j.records] == ["a[none]"]
    assert "Partial run" in markdown_summary(j)


def test_journal_json_and_jsonl_read_the_same(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.header({"run_id": "r", "seed": 3})
    w.record(record("z[none]", "error"))
    w.record(record("a[none]"))
    w.close()
    j = read_journal(tmp_path / "journal.jsonl")
    doc = read_journal(write_document(j, tmp_path))
    assert doc.header == j.header and sorted(doc.records, key=lambda r: r["id"]) == sorted(j.records, key=lambda r: r["id"])
    assert doc.complete == j.complete is False


def test_no_journal_is_an_error_naming_the_place(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match=f"no journal in {tmp_path}"):
        read_journal(tmp_path)
    (tmp_path / "journal.jsonl").write_text('{"kind": "record", "id": "x"}\n')
    with pytest.raises(JournalError, match="no header line"):
        read_journal(tmp_path)


def test_every_output_is_written_from_a_journal(tmp_path: Path) -> None:
    j = Journal(path=tmp_path / "journal.jsonl", header={"run_id": "r", "seed": 1, "nats_py": "2.16.0"},
                records=(record("a[none]"), record("b[x]", "failed", ("tasks",)), record("c[y]", "error")), complete=False)
    write_outputs(j)
    for name in ("journal.json", "summary.md", "report.html", "junit.xml"):
        assert (tmp_path / name).stat().st_size > 0, name
    xml = junit_xml(j)
    assert 'tests="3" failures="1" errors="1"' in xml and "[tasks] tasks left something" in xml
