"""The compose cluster end to end: `harness run --env compose --cluster 3` runs real three-node
scenarios and leaves no container, pod, network or volume; `harness env up --env compose
--cluster 3` holds one in the background, `status` probes every node, `down` removes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from compose_helpers import wait_until
from harness.env.compose import OWNER_LABEL, PROJECT_PREFIX, docker_client, project_resources

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[2]
HARNESS = [sys.executable, "-m", "harness.cli"]


def _engine_state(client: Any) -> set[str]:
    """Every container, pod (podman's libpod API; none on Docker), network and volume the engine has."""
    out = {f"container {c.name}" for c in client.containers.list(all=True)}
    out |= {f"network {n.name}" for n in client.networks.list()}
    out |= {f"volume {v.name}" for v in client.volumes.list()}
    r = client.api.get(f"{client.api.base_url}/v4.0.0/libpod/pods/json")
    if r.status_code == 200:
        out |= {f"pod {p['Name']}" for p in r.json() or []}
    return out


def _harness(root: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NATS_CHAOS_RUN_ROOT": str(root)}
    return subprocess.run([*HARNESS, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "runs"
    r.mkdir(mode=0o700)
    return r


def test_run_compose_cluster_fetch_and_stepdown_passes_and_leaves_nothing(root: Path, tmp_path: Path) -> None:
    client = docker_client()
    try:
        before = _engine_state(client)
        run = _harness(root, "run", "--env", "compose", "--cluster", "3", "-k", "fetch and stepdown", "--seed", "3",
                       "--reports", str(tmp_path / "reports"), timeout=300)
        after = _engine_state(client)
    finally:
        client.close()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    doc = json.loads(next((tmp_path / "reports").glob("*/journal.json")).read_text())
    assert doc["header"]["backend"] == "compose"
    assert {r["id"]: r["verdict"] for r in doc["records"]} == {
        "next.fetch[cluster.stepdown_stream@waiting~r3]": "passed", "next.fetch[cluster.stepdown_consumer@waiting~r3]": "passed"}
    for r in doc["records"]:  # the leader named before the fault is not the one after its heal
        leaders = [e for e in r["events"] if e["what"] == "stream leader"]
        assert [e["when"] for e in leaders] == ["before the fault", "after heal"], leaders
    assert after - before == set(), after - before


def test_env_up_compose_cluster_detached_status_then_down(root: Path) -> None:
    project = f"{PROJECT_PREFIX}c3-{os.getpid()}"
    client = docker_client()
    try:
        up = _harness(root, "env", "up", "--env", "compose", "--cluster", "3", "--detach", "--project", project,
                      timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "cluster:   3 nodes" in up.stdout and f"project:   {project}" in up.stdout
        state = json.loads((root / "env-up.json").read_text())
        assert (state["backend"], state["project"], [n["name"] for n in state["nodes"]]) == (
            "compose", project, ["n1", "n2", "n3"])
        owners = {c.labels[OWNER_LABEL] for c in client.containers.list(all=True, filters={
            "label": [f"com.docker.compose.project={project}"]})}
        assert owners == {f"{state['owner_pid']}:{state['owner_create_time']:.2f}"}  # reaped if its owner dies

        status = _harness(root, "env", "status", timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        for n in ("n1", "n2", "n3"):
            assert f"nats-server {n} /healthz:" in status.stdout and "NO ANSWER" not in status.stdout
    finally:
        down = _harness(root, "env", "down", timeout=120)
        left = project_resources(client, project)
        client.close()
    assert down.returncode == 0, down.stderr
    assert left == []
    assert not (root / "env-up.json").exists()


def test_a_compose_cluster_run_stopped_by_ctrl_c_leaves_nothing(root: Path, tmp_path: Path) -> None:
    client = docker_client()
    try:
        before = _engine_state(client)
        label = {"label": [OWNER_LABEL]}
        # SIGINT at its default, as a terminal's foreground job has it (a background job of a
        # shell without job control inherits it ignored)
        proc = subprocess.Popen([*HARNESS, "run", "--env", "compose", "--cluster", "3", "-k", "fetch and stepdown",
                                 "--seed", "3", "--reports", str(tmp_path / "reports")],
                                cwd=ROOT, env={**os.environ, "NATS_CHAOS_RUN_ROOT": str(root)}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            def running() -> int:
                return len({f"container {c.name}" for c in client.containers.list(filters=label)} - before)

            wait_until(lambda: running() >= 4 or proc.poll() is not None, 90, "the cluster's four containers running")
            assert proc.poll() is None, proc.communicate()[0]
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        after = _engine_state(client)
    finally:
        client.close()
    assert proc.returncode != 0, out[-2000:]
    assert after - before == set(), after - before


LONG = """\
defaults: {cluster: 3}
matrix:
  - name: long
    flows: [selftest.yield]
    params: {seconds: 3.0}
  - name: quick
    flows: [selftest.clean_task]
"""


def test_a_compose_node_killed_outside_a_fault_errors_the_scenario_and_the_cluster_is_restarted(
        root: Path, tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(LONG)
    client = docker_client()
    try:
        before = _engine_state(client)
        proc = subprocess.Popen([*HARNESS, "run", "--env", "compose", "--seed", "5"], cwd=tmp_path,
                                env={**os.environ, "NATS_CHAOS_RUN_ROOT": str(root)},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            def mine(service: str) -> list[Any]:
                return [c for c in client.containers.list(filters={"label": [
                    OWNER_LABEL, f"com.docker.compose.service={service}"]})
                        if c.labels[OWNER_LABEL].split(":")[0] == str(proc.pid)]

            def agent_running() -> bool:
                kids = psutil.Process(proc.pid).children(recursive=True)
                return any("harness.agent" in " ".join(k.cmdline()) for k in kids if k.is_running())

            wait_until(lambda: (len(mine("n2")) == 1 and agent_running()) or proc.poll() is not None, 90,
                       "the cluster up and the flow's agent started")
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(1.0)  # inside the 3 s flow
            mine("n2")[0].kill()  # SIGKILL through the engine, outside any fault
            out, _ = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        after = _engine_state(client)
    finally:
        client.close()
    run_dir = (tmp_path / "reports/latest").resolve()
    doc = json.loads((run_dir / "journal.json").read_text())
    lines = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert {r["id"]: r["verdict"] for r in doc["records"]} == {"selftest.yield[none]": "error",
                                                               "selftest.clean_task[none]": "passed"}, out
    err = next(r for r in doc["records"] if r["verdict"] == "error")
    assert "nats-server-n2" in err["reason"], err["reason"]
    assert [x["action"] for x in lines if x["kind"] == "infra"] == ["restarted"]
    assert proc.returncode == 2
    assert after - before == set(), after - before
