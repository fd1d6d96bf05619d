"""`harness run` on a cluster, end to end: `--cluster 3` runs real three-node scenarios and
leaves nothing running; a node that dies outside a fault makes the scenario in flight `error`
and the cluster is restarted, as for one server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

HARNESS = Path(sys.executable).with_name("harness")
ROOT = Path(__file__).resolve().parents[2]
LONG = """\
defaults: {cluster: 3}
matrix:
  - name: long
    flows: [selftest.yield]
    params: {seconds: 3.0}
  - name: quick
    flows: [selftest.clean_task]
"""


def _servers(proc: subprocess.Popen) -> list[psutil.Process]:
    out = []
    try:
        for p in psutil.Process(proc.pid).children(recursive=True):
            try:
                if p.name() == "nats-server" and "--version" not in p.cmdline():
                    out.append(p)
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return out


def test_run_with_cluster_3_runs_three_node_scenarios_and_leaves_nothing(tmp_path: Path) -> None:
    proc = subprocess.Popen([str(HARNESS), "run", str(ROOT / "scenarios" / "cluster.yaml"), "--cluster", "3", "-k",
                             "fetch and stepdown", "--seed", "3", "--reports", str(tmp_path / "reports")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        seen |= {p.pid for p in _servers(proc)}
        time.sleep(0.2)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert len(seen) >= 3, seen  # three nodes ran
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in seen)
    doc = json.loads(next((tmp_path / "reports").glob("*/journal.json")).read_text())
    assert {r["id"]: r["verdict"] for r in doc["records"]} == {
        "next.fetch[cluster.stepdown_stream@waiting~r3]": "passed", "next.fetch[cluster.stepdown_consumer@waiting~r3]": "passed"}
    for r in doc["records"]:
        assert [e["when"] for e in r["events"] if e["what"] == "stream leader"] == ["before the fault", "after heal"]


def test_a_node_killed_outside_a_fault_errors_the_scenario_and_the_cluster_is_restarted(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(LONG)
    proc = subprocess.Popen([str(HARNESS), "run", "--seed", "5"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_servers(proc)) < 3 or not any("harness.agent" in " ".join(c.cmdline())
                                                  for c in psutil.Process(proc.pid).children(recursive=True)
                                                  if c.is_running()):
            assert time.monotonic() < deadline, "no cluster and agent in time"
            time.sleep(0.05)
        time.sleep(1.0)  # inside the 3 s flow
        victim = sorted(_servers(proc), key=lambda p: p.create_time())[1]
        victim.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run_dir = (tmp_path / "reports/latest").resolve()
    doc = json.loads((run_dir / "journal.json").read_text())
    lines = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert {r["id"]: r["verdict"] for r in doc["records"]} == {"selftest.yield[none]": "error",
                                                               "selftest.clean_task[none]": "passed"}, out
    err = next(r for r in doc["records"] if r["verdict"] == "error")
    assert "nats-server-n" in err["reason"] and "exited with status -9" in err["reason"], err["reason"]
    assert [x["action"] for x in lines if x["kind"] == "infra"] == ["restarted"]
    assert proc.returncode == 2
