"""Self-heal with scenarios in flight on two workers (`harness run -n 2`): a Toxiproxy or
nats-server SIGKILLed (for real) under one worker costs that worker's scenario in flight,
and nothing else: the other worker's scenario passes, the environment is restarted, the
run goes on to its last scenario."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

HARNESS = Path(sys.executable).with_name("harness")
# Every scenario a 3 s flow: whenever the kill lands, each worker has one in flight.
TOTAL = 6
SCENARIOS = "matrix:\n" + "".join(
    f"  - name: long-{i}\n    variant: v{i}\n    flows: [selftest.yield]\n    params: {{seconds: 3.0}}\n" for i in range(TOTAL)
)


def _tree(proc: subprocess.Popen) -> list[psutil.Process]:
    out = []
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def _servers(proc: subprocess.Popen, name: str) -> list[psutil.Process]:
    out = []
    for p in _tree(proc):
        try:
            if p.name() == name and "--version" not in p.cmdline():
                out.append(p)
        except psutil.Error:
            pass
    return out


def _cmd(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _wait(pred, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("server", ["toxiproxy-server", "nats-server"])
def test_a_server_killed_under_one_of_two_workers_costs_only_its_scenario_in_flight(tmp_path: Path, server: str) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(SCENARIOS)
    proc = subprocess.Popen([str(HARNESS), "run", "-n", "2", "--seed", "5"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # both workers' environments up and their first flows started (an agent each, and a spare)
        _wait(lambda: len(_servers(proc, server)) == 2)
        _wait(lambda: len([p for p in _tree(proc) if "harness.agent" in " ".join(_cmd(p))]) >= 4)
        time.sleep(1.0)  # inside both workers' 3 s flows
        victim = _servers(proc, server)[0]
        victim.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run_dir = (tmp_path / "reports/latest").resolve()
    doc = json.loads((run_dir / "journal.json").read_text())
    lines = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    verdicts = {x["id"]: x["verdict"] for x in doc["records"]}
    assert len(verdicts) == TOTAL, out  # the run went on to its last scenario
    errors = [i for i, v in verdicts.items() if v == "error"]
    assert len(errors) == 1, (verdicts, out)  # the killed worker's scenario in flight, nothing else
    assert all(v == "passed" for i, v in verdicts.items() if i != errors[0]), (verdicts, out)
    err = next(x for x in doc["records"] if x["verdict"] == "error")
    assert err["reason"].startswith(f"{server} died during the scenario (outside a fault)"), err["reason"]
    infra = [x for x in lines if x["kind"] == "infra"]
    assert [(x["action"], x["scenario"]) for x in infra] == [("restarted", errors[0])], infra
    assert proc.returncode == 2  # one scenario is `error`: the run says so
