"""A run stopped by SIGKILL keeps every scenario it finished, and `harness report` builds
every output from what it kept. Real `harness run`, real servers, a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

# Runs start longest first by what they declare (harness/schedule.py); the quick entry declares
# a longer timeout than the slow one so that it runs first and is journalled before the kill.
QUICK_THEN_SLOW = """\
matrix:
  - name: quick
    flows: [selftest.clean_task, selftest.leak_task]
    timeout: 40
  - name: slow
    flows: [selftest.yield]
    params: {seconds: 20.0}
    timeout: 30
"""
HARNESS = Path(sys.executable).with_name("harness")


def _records(jsonl: Path) -> list[dict]:
    if not jsonl.exists():
        return []
    out = []
    for line in jsonl.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("kind") == "record":
            out.append(entry)
    return out


def test_a_sigkilled_run_keeps_its_finished_scenarios_and_report_rebuilds_everything(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(QUICK_THEN_SLOW)
    proc = subprocess.Popen([str(HARNESS), "run", "--seed", "9"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        jsonl = None
        while time.monotonic() < deadline:  # bounded: until both quick scenarios are journalled
            runs = [p for p in (tmp_path / "reports").glob("*/journal.jsonl")] if (tmp_path / "reports").exists() else []
            jsonl = runs[0] if runs else None
            if jsonl is not None and len(_records(jsonl)) >= 2:
                break
            time.sleep(0.05)
        assert jsonl is not None and len(_records(jsonl)) >= 2, "the quick scenarios were never journalled"
        started = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)  # inside the 20 s scenario: no teardown, no end line
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Nothing outlives the killed run (its children die with it: PDEATHSIG).
    _, alive = psutil.wait_procs(started, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [p.cmdline() for p in alive]

    run_dir = jsonl.parent
    assert not (run_dir / "journal.json").exists() and not (run_dir / "report.html").exists()
    r = subprocess.run([str(HARNESS), "report", str(tmp_path / "reports/latest")], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 scenario(s), partial" in r.stdout, r.stdout
    doc = json.loads((run_dir / "journal.json").read_text())
    assert doc["complete"] is False and doc["header"]["seed"] == 9
    assert {rec["id"]: rec["verdict"] for rec in doc["records"]} == {
        "selftest.clean_task[none]": "passed", "selftest.leak_task[none]": "failed"}
    assert "Partial run" in (run_dir / "summary.md").read_text()
    assert "selftest.leak_task[none]" in (run_dir / "report.html").read_text()
    assert 'tests="2" failures="1"' in (run_dir / "junit.xml").read_text()


def test_an_ended_run_writes_its_end_line_and_report_rebuilds_the_same_journal(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text("matrix:\n  - name: q\n    flows: [selftest.clean_task, selftest.leak_task]\n")
    r = subprocess.run([str(HARNESS), "run", "--seed", "4", "-n", "2"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout + r.stderr
    run_dir = (tmp_path / "reports/latest").resolve()
    lines = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["header", "record", "record", "end"] and lines[-1]["exitstatus"] == 1
    assert lines[0]["nats_server"] != "?", "the workers' versions reach the controller's header"
    before = json.loads((run_dir / "journal.json").read_text())
    os.remove(run_dir / "journal.json")
    again = subprocess.run([str(HARNESS), "report", str(run_dir)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "complete" in again.stdout, again.stdout + again.stderr
    assert json.loads((run_dir / "journal.json").read_text()) == before
