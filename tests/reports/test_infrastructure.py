"""A run survives its infrastructure: Toxiproxy SIGKILLed mid-run (for real) makes the
scenario in flight `error`, the environment is restarted and the run goes on; the same
server dying again right after its restart ends the run with exit 2."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from harness.infrastructure import MAX_RESTARTS, Death, Watch, errored

HARNESS = Path(sys.executable).with_name("harness")
SCENARIOS = """\
matrix:
  - name: long
    flows: [selftest.yield]
    params: {seconds: 3.0}
  - name: long-again
    variant: again
    flows: [selftest.yield]
    params: {seconds: 3.0}
  - name: quick
    flows: [selftest.clean_task, selftest.clean_iterator]
"""


def test_watch_restarts_then_stops_on_the_same_component_again() -> None:
    w = Watch()
    toxi = [Death("toxiproxy-server", "exited")]
    assert w.decide([]) == "none"
    assert w.decide(toxi) == "restart"
    w.restarted("toxiproxy-server")
    assert w.decide(toxi) == "stop"  # in a row
    w2 = Watch()
    for _ in range(MAX_RESTARTS):
        assert w2.decide(toxi) == "restart"
        w2.restarted("toxiproxy-server")
        assert w2.decide([]) == "none"  # a healthy scenario in between
    assert w2.decide(toxi) == "stop"  # the bound


def test_the_scenario_in_flight_becomes_error_with_the_evidence() -> None:
    rec = errored({"id": "a[none]", "verdict": "passed", "events": [], "timings": {"wall": 2.0}},
                  Death("nats-server", "nats-server (pid 7) exited with status -9; last lines ...\nlog"))
    assert rec["verdict"] == "error" and rec["reason"].startswith("nats-server died during the scenario (outside a fault)")
    assert rec["events"][-1]["what"] == "infrastructure died" and rec["events"][-1]["verdict_before"] == "passed"


def _children(proc: subprocess.Popen, name: str) -> list[psutil.Process]:
    out = []
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            if name in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def _servers(proc: subprocess.Popen, name: str) -> list[psutil.Process]:
    """The running server processes of that name (not a short-lived `--version` call)."""
    out = []
    for p in _children(proc, name):
        try:
            if "--version" not in p.cmdline():
                out.append(p)
        except psutil.Error:  # gone meanwhile
            pass
    return out


def _wait(pred, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _run(tmp_path: Path, kills: int, server: str = "toxiproxy-server") -> tuple[subprocess.CompletedProcess, dict, list[dict]]:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(SCENARIOS)
    proc = subprocess.Popen([str(HARNESS), "run", "--seed", "5"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed: set[int] = set()
    try:
        for _ in range(kills):
            # A toxiproxy we have not killed yet, and an agent running the long flow: then kill it.
            _wait(lambda: [p for p in _servers(proc, server) if p.pid not in killed])
            _wait(lambda: _children(proc, "harness.agent"))
            time.sleep(1.0)  # inside the 3 s flow
            # Chosen now, not before the sleep: `nats-server --version` is a child for a moment too.
            victim = _wait(lambda: [p for p in _servers(proc, server) if p.pid not in killed])[0]
            victim.send_signal(signal.SIGKILL)
            killed.add(victim.pid)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run_dir = (tmp_path / "reports/latest").resolve()
    doc = json.loads((run_dir / "journal.json").read_text())
    lines = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out), doc, lines


def test_toxiproxy_killed_mid_run_errors_one_scenario_and_the_run_goes_on(tmp_path: Path) -> None:
    r, doc, lines = _run(tmp_path, kills=1)
    verdicts = {x["id"]: x["verdict"] for x in doc["records"]}
    assert verdicts == {"selftest.yield[none]": "error", "selftest.yield[none~again]": "passed",
                        "selftest.clean_task[none]": "passed", "selftest.clean_iterator[none]": "passed"}, r.stdout
    err = next(x for x in doc["records"] if x["verdict"] == "error")
    assert err["reason"].startswith("toxiproxy-server died during the scenario (outside a fault): toxiproxy-server (pid ")
    assert "exited with status -9" in err["reason"] and err["replay"]
    infra = [x for x in lines if x["kind"] == "infra"]
    assert len(infra) == 1 and infra[0]["action"] == "restarted" and infra[0]["scenario"] == "selftest.yield[none]"
    assert r.returncode == 2  # a scenario is `error`: the run says so
    assert "infrastructure: toxiproxy-server died during selftest.yield[none]; restarted (restart 1 of 3)" in r.stdout
    assert "toxiproxy-server died during selftest.yield[none]; restarted" in (tmp_path / "reports/latest/summary.md").read_text()


def test_the_same_server_dying_again_after_its_restart_ends_the_run(tmp_path: Path) -> None:
    r, doc, lines = _run(tmp_path, kills=2)
    assert r.returncode == 2, r.stdout
    assert [x["verdict"] for x in doc["records"]] == ["error", "error"], r.stdout  # the quick ones never ran
    assert [x["action"] for x in lines if x["kind"] == "infra"] == ["restarted", "ended the run"]
    assert "died again; ending the run" in r.stdout


def test_nats_server_killed_mid_run_errors_one_scenario_and_the_run_goes_on(tmp_path: Path) -> None:
    r, doc, lines = _run(tmp_path, kills=1, server="nats-server")
    verdicts = {x["id"]: x["verdict"] for x in doc["records"]}
    assert verdicts == {"selftest.yield[none]": "error", "selftest.yield[none~again]": "passed",
                        "selftest.clean_task[none]": "passed", "selftest.clean_iterator[none]": "passed"}, r.stdout
    err = next(x for x in doc["records"] if x["verdict"] == "error")
    assert "nats-server" in err["reason"], err["reason"]
    assert [x["action"] for x in lines if x["kind"] == "infra"] == ["restarted"]
