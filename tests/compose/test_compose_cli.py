"""`harness env` is the compose backend's command line (behind `make compose-up/-down`):
up in the background, status, down, and the stack of an owner that died removed by `down`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import psutil
import pytest

from compose_helpers import wait_until
from harness.env.compose import PROJECT_PREFIX, docker_client, project_resources

pytestmark = pytest.mark.compose

HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NATS_CHAOS_RUN_ROOT": str(root)}
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "runs"
    r.mkdir(mode=0o700)
    return r


@contextlib.contextmanager
def stack_up(root: Path, project: str) -> Iterator[tuple[Any, subprocess.CompletedProcess[str]]]:
    """`harness env up --env compose --detach --project <project>`; a Docker client; `env down` at the end."""
    client = docker_client()
    try:
        up = harness(root, "env", "up", "--env", "compose", "--detach", "--project", project)
        assert up.returncode == 0, up.stderr
        yield client, up
    finally:
        harness(root, "env", "down")
        client.close()


def test_env_up_detached_compose_then_down_removes_the_stack(root: Path) -> None:
    project = f"{PROJECT_PREFIX}cli-{os.getpid()}"
    with stack_up(root, project) as (client, up):
        assert f"project:   {project}" in up.stdout and "password" not in up.stdout.replace("holds the password", "")
        state = json.loads((root / "env-up.json").read_text())
        assert (state["backend"], state["project"]) == ("compose", project)
        assert len([r for r in project_resources(client, project) if r.startswith("container")]) == 2

        status = harness(root, "env", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "nats-server /healthz:  ok" in status.stdout

        down = harness(root, "env", "down")
        assert down.returncode == 0, down.stderr
        assert project_resources(client, project) == []
        assert not (root / "env-up.json").exists()


def test_env_down_removes_the_stack_of_an_owner_that_died(root: Path) -> None:
    # `make compose-up`'s stack has a fixed name, which the next run's reaping leaves alone:
    # when its background owner was SIGKILLed, `harness env down` still removes it.
    project = f"chaos-cli-{os.getpid()}"
    with stack_up(root, project) as (client, _):
        owner = json.loads((root / "env-up.json").read_text())["owner_pid"]
        os.kill(owner, signal.SIGKILL)
        wait_until(lambda: not psutil.pid_exists(owner) or psutil.Process(owner).status() == psutil.STATUS_ZOMBIE,
                   10, "the owner gone")
        assert project_resources(client, project), "the stack outlived its owner"

        down = harness(root, "env", "down")
        assert down.returncode == 0, down.stderr
        assert project_resources(client, project) == []


def test_env_reap_compose_with_nothing_stale_exits_0(root: Path) -> None:
    r = harness(root, "env", "reap", "--env", "compose")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
