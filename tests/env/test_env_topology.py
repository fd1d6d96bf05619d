"""The topology is a value every environment takes: a single server answers the per-node
interface as its one node `n1` (whose faults are the server faults); a cluster is asked the
same questions; a backend or class that cannot run a topology says so before starting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from env_helpers import gone

from harness.env import Environment, NodeEndpoints, make_environment
from harness.env.local import LocalEnvironment
from harness.env.topology import CLUSTER3, SINGLE
from harness.errors import EnvError


def test_a_single_server_is_node_n1(own_env: LocalEnvironment) -> None:
    env: Environment = own_env
    assert env.topology == SINGLE and not env.is_cluster
    (n1,) = env.nodes_endpoints()
    assert n1 == NodeEndpoints("n1", env.client_url, env.direct_url, env.monitor_url, env.proxy_name)
    assert env.node_endpoints("n1") is not None and env.monitor("n1", "/varz")["server_name"]
    with pytest.raises(EnvError, match="no node 'n2' in this environment"):
        env.kill_node("n2")
    env.kill_node("n1")
    assert not env.node_running("n1") and not env.server_running()
    assert [name for name, _ in env.dead_components()] == ["nats-server"]
    env.restart_node("n1")
    assert env.node_running("n1") and env.dead_components() == []


def test_a_cluster_answers_the_same_questions_per_node() -> None:
    with make_environment("local", topology=CLUSTER3) as env:
        assert env.is_cluster and [n.name for n in env.nodes_endpoints()] == ["n1", "n2", "n3"]
        n2 = env.node_endpoints("n2")
        assert n2.proxy == "nats-n2" and n2.client_url != n2.direct_url
        assert env.monitor("n2", "/varz")["server_name"] == "n2"
        env.kill_node("n3")
        assert not env.node_running("n3") and env.node_running("n1")
        assert [name for name, _ in env.dead_components()] == ["nats-server-n3"]


def test_a_topology_no_class_runs_is_refused_before_anything_starts() -> None:
    with pytest.raises(EnvError, match="LocalEnvironment runs 1 node"):
        LocalEnvironment(topology=CLUSTER3)
    from harness.env.compose import ComposeClusterEnvironment, ComposeEnvironment

    with pytest.raises(EnvError, match="ComposeEnvironment runs 1 node"):
        ComposeEnvironment(topology=CLUSTER3)
    with pytest.raises(EnvError, match=r"ComposeClusterEnvironment runs 3 node\(s\), not 1"):
        ComposeClusterEnvironment(topology=SINGLE)
    # compose + 3 nodes is the compose cluster (built, not started: no Docker needed here)
    assert type(make_environment("compose", topology=CLUSTER3)) is ComposeClusterEnvironment


def test_harness_env_check_on_a_cluster() -> None:
    r = subprocess.run([sys.executable, "-m", "harness.cli", "env", "check", "--cluster", "3"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "cluster:   3 nodes" in r.stdout and "env check: ok" in r.stdout
    r = subprocess.run([sys.executable, "-m", "harness.cli", "env", "check", "--cluster", "3", "--nats-port", "4999"],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr.splitlines()[0]) == (2, "--nats-port applies to a single server")


def test_harness_env_up_a_cluster_detached_status_per_node_down(run_root: Path) -> None:
    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness.cli", "env", *args],
                              capture_output=True, text=True, timeout=60)

    r = harness("up", "--cluster", "3", "--detach")
    try:
        assert r.returncode == 0, r.stderr
        st = json.loads((run_root / "env-up.json").read_text())
        assert [n["name"] for n in st["nodes"]] == ["n1", "n2", "n3"]
        pids = [s["pid"] for s in st["servers"]]
        assert len(pids) == 4  # toxiproxy-server and three nats-servers, watched and ended by `down`
        status = harness("status")
        assert status.returncode == 0, status.stdout + status.stderr
        for name in ("n1", "n2", "n3"):
            assert f"nats-server {name} /healthz: ok" in status.stdout, status.stdout
        down = harness("down")
        assert down.returncode == 0, down.stderr
        assert all(gone(p) for p in pids)
    finally:
        harness("down")
