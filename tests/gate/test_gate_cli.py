"""`harness gate` as a user runs it: real runs, real reruns, real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(sys.executable).with_name("harness")
SELFTEST = """\
matrix:
  - name: twins
    flows: [selftest.leak_task, selftest.clean_task]
"""
LEAK_KNOWN = """\
- id: KI-900
  title: the self-test flow leaks a task on purpose
  scenarios: ["selftest.leak_task[none]"]
  checks: [tasks]
  client: "nats-py>=2.0"
"""


def gate(cwd: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HARNESS), "gate", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, **env})


def project(tmp_path: Path, known: str) -> Path:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(SELFTEST)
    (tmp_path / "known_issues").mkdir()
    (tmp_path / "known_issues/known_issues.yaml").write_text(known)
    return tmp_path


def test_every_finding_known_passes_with_reruns_and_writes_gate_md(tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    r = gate(project(tmp_path, LEAK_KNOWN), "--seed", "3", GITHUB_STEP_SUMMARY=str(summary))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gate: rerun 1 of 2: 1 scenario(s)" in r.stdout and "gate: rerun 2 of 2: 1 scenario(s)" in r.stdout
    run_dir = next((tmp_path / "reports").glob("*-gate"))
    md = (run_dir / "gate.md").read_text()
    assert md.startswith("# nats-chaos gate PASSED") and "`selftest.leak_task[none]`: KI-900 (tasks)" in md
    assert summary.read_text() == md  # the step summary gets gate.md, not three run summaries
    doc = json.loads((run_dir / "gate.json").read_text())
    leak = next(d for d in doc["scenarios"] if d["id"] == "selftest.leak_task[none]")
    assert leak["verdicts"] == ["failed", "failed", "failed"] and leak["status"] == "known"
    assert len(list((run_dir / "reruns").glob("[0-9]*/journal.jsonl"))) == 2
    # `harness report` on the gate's run rebuilds gate.md from the journals (reruns included).
    for name in ("gate.md", "gate.json", "report.html"):
        (run_dir / name).unlink()
    again = subprocess.run([str(HARNESS), "report", str(run_dir)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert (run_dir / "gate.md").read_text() == md and (run_dir / "report.html").exists()


def test_a_new_finding_and_a_stale_issue_fail_the_gate(tmp_path: Path) -> None:
    stale = LEAK_KNOWN.replace("selftest.leak_task[none]", "selftest.clean_task[none]").replace("KI-900", "KI-901")
    r = gate(project(tmp_path, stale), "--seed", "3", "--reruns", "1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "## New findings (1)" in r.stdout and "`selftest.leak_task[none]` (failed/failed): tasks not explained" in r.stdout
    assert "replay: `harness run 'scenarios/s.yaml::selftest.leak_task[none]' --seed 3" in r.stdout
    assert "KI-901 no longer reproduces on nats-py" in r.stdout and "narrow its range" in r.stdout


def test_a_malformed_known_issues_file_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    bad = LEAK_KNOWN.replace("checks: [tasks]", "checks: [taks]")
    root = tmp_path / "runs"
    r = gate(project(tmp_path, bad), NATS_CHAOS_RUN_ROOT=str(root))
    assert r.returncode == 2
    assert r.stderr.splitlines()[0].startswith(
        "known_issues/known_issues.yaml: entry KI-900: field 'checks': unknown check 'taks' (known: accounting, consumers, ")
    assert not (tmp_path / "reports").exists() and not root.exists()


def test_gate_on_reference_scenarios_with_the_project_known_issues(tmp_path: Path) -> None:
    # A small real selection: the no-fault control passes, the unsubscribe one fails with KI-004.
    r = subprocess.run([str(HARNESS), "gate", "-k", "next.fetch and (none or unsubscribe)", "--seed", "2026",
                        "--reports", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "`next.fetch[drain.unsubscribe@waiting]`: KI-004 (iterators)" in r.stdout
    assert "KI-001 not exercised: no scenario it names ran" in r.stdout


def test_harness_run_marks_known_and_new_and_refuses_a_malformed_file_before_starting(tmp_path: Path) -> None:
    project(tmp_path, LEAK_KNOWN)
    r = subprocess.run([str(HARNESS), "run", "--seed", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout + r.stderr
    summary = (tmp_path / "reports/latest/summary.md").read_text()
    assert "| `selftest.leak_task[none]` | FAIL | known KI-900 |" in summary
    (tmp_path / "known_issues/known_issues.yaml").write_text(LEAK_KNOWN.replace("client:", "clent:"))
    root = tmp_path / "runs"
    bad = subprocess.run([str(HARNESS), "run"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL, env={**os.environ, "NATS_CHAOS_RUN_ROOT": str(root)})
    assert bad.returncode == 2
    assert "known_issues/known_issues.yaml: entry KI-900: field 'clent': unknown field" in bad.stderr, bad.stderr
    assert not root.exists()


def test_target_options_and_selection_reach_every_run_and_reruns_name_node_ids() -> None:
    from harness.cli_reports import split_run_args

    first, rerun = split_run_args(["-k", "fetch", "scenarios/a.yaml", "--client", "nats-py==2.15.0",
                                   "--server", "2.14.6", "--env", "compose", "-n", "2"])
    assert first == ["-k", "fetch", "scenarios/a.yaml", "--client", "nats-py==2.15.0", "--server", "2.14.6",
                     "--env", "compose", "-n", "2"]
    assert rerun == ["-k", "fetch", "--client", "nats-py==2.15.0", "--server", "2.14.6", "--env", "compose", "-n", "2"]
