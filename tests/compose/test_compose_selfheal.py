"""Self-heal on compose with two workers (`harness run -n 2 --env compose`): a Toxiproxy or
nats-server container SIGKILLed (for real, through the engine) under one worker costs that
worker's scenario in flight and nothing else; its stack is replaced and the run goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.env.compose import OWNER_LABEL, SERVICE_LABEL, docker_client

pytestmark = pytest.mark.compose

HARNESS = Path(sys.executable).with_name("harness")
TOTAL = 6
SCENARIOS = "matrix:\n" + "".join(
    f"  - name: long-{i}\n    variant: v{i}\n    flows: [selftest.yield]\n    params: {{seconds: 4.0}}\n" for i in range(TOTAL)
)


def _tree_pids(proc: subprocess.Popen) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    except psutil.Error:
        return set()


def _agents(proc: subprocess.Popen) -> int:
    n = 0
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            n += "harness.agent" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            pass
    return n


def _containers(client, proc: subprocess.Popen, service: str) -> list:
    """Running containers of `service` whose owner is one of this run's processes (its workers)."""
    pids = _tree_pids(proc)
    out = []
    for c in client.containers.list(filters={"label": [f"{SERVICE_LABEL}={service}"]}):
        owner = c.labels.get(OWNER_LABEL, "")
        if owner.split(":")[0].isdigit() and int(owner.split(":")[0]) in pids:
            out.append(c)
    return out


def _wait(pred, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("service,component", [("toxiproxy", "toxiproxy"), ("nats", "nats-server")])
def test_a_container_killed_under_one_of_two_workers_costs_only_its_scenario_in_flight(
    tmp_path: Path, service: str, component: str
) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(SCENARIOS)
    client = docker_client()
    proc = subprocess.Popen([str(HARNESS), "run", "-n", "2", "--env", "compose", "--seed", "5"], cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: len(_containers(client, proc, service)) == 2)  # both workers' stacks up
        _wait(lambda: _agents(proc) >= 4)  # and a flow started on each (an agent each, plus a spare)
        time.sleep(1.5)  # inside both workers' 4 s flows
        _containers(client, proc, service)[0].kill()  # SIGKILL through the engine
        out, _ = proc.communicate(timeout=300)
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
    assert component in err["reason"].split(" died")[0], err["reason"]
    infra = [x for x in lines if x["kind"] == "infra"]
    assert [(x["action"], x["scenario"]) for x in infra] == [("restarted", errors[0])], infra
    assert proc.returncode == 2
