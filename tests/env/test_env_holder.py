"""The session's environment holder on real servers: the runner is closed before the environment
stops, a failed start stops what it started and is remembered, a dead server is restarted."""

from __future__ import annotations

from typing import Any

import pytest
from env_helpers import gone

from harness.env import Environment
from harness.errors import EnvError
from harness.env.topology import CLUSTER3, SINGLE
from harness.session import EnvironmentHolder, Environments
from harness.targets.resolve import resolve_target


def server_pids(env: Environment) -> list[int]:
    return [mp.pid for mp in (env.nats, env.toxi)]  # type: ignore[attr-defined]


class FakeRunner:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.server_up_at_close: bool | None = None

    def close(self) -> None:
        self.server_up_at_close = self.env.server_running()


def holder(open: Any) -> EnvironmentHolder:
    target = resolve_target(None, None)
    return EnvironmentHolder("local", lambda: target, open)


def test_runner_closed_before_the_environment_stops() -> None:
    h = holder(lambda env, target: FakeRunner(env))
    runner = h.runner()
    assert h.runner() is runner and h.versions["nats-server"]
    pids = server_pids(runner.env)
    h.close()
    assert runner.server_up_at_close is True
    assert all(gone(p) for p in pids) and h.env is None
    h.close()  # twice is fine


def test_a_failed_start_stops_what_it_started_and_is_remembered() -> None:
    seen: list[Environment] = []

    def failing(env: Environment, target: Any) -> Any:
        seen.append(env)
        raise EnvError("runner could not start")

    h = holder(failing)
    with pytest.raises(EnvError) as first:
        h.runner()
    pids = server_pids(seen[0])
    assert all(gone(p) for p in pids)
    with pytest.raises(EnvError) as again:
        h.runner()
    assert again.value is first.value and len(seen) == 1  # not started a second time


def test_a_dead_server_is_restarted_then_a_second_death_ends_it() -> None:
    h = holder(lambda env, target: FakeRunner(env))
    try:
        assert h.survive() is None  # nothing started yet: nothing to do
        h.runner()
        assert h.survive() is None  # all alive
        h.env.kill_server()  # type: ignore[union-attr]
        s = h.survive()
        assert s is not None and (s.death.component, s.outcome, s.stop_session) == ("nats-server", "restarted", None)
        assert h.env is not None and h.env.server_running()
        h.env.kill_server()
        s = h.survive()
        assert s is not None and s.outcome == "ended the run" and s.stop_session
        with pytest.raises(EnvError, match="died again"):
            h.runner()
    finally:
        h.close()


def test_a_run_keeps_one_environment_per_topology_and_stops_them_all() -> None:
    target = resolve_target(None, None)
    envs = Environments("local", lambda: target, lambda env, t: FakeRunner(env))
    try:
        single = envs.runner(SINGLE)
        cluster = envs.runner(CLUSTER3)
        assert cluster.env.is_cluster and not single.env.is_cluster
        assert envs.runner(SINGLE) is single  # kept running while the cluster ran, not started again
        assert envs.current.topology == SINGLE and envs.versions()["nats-server"]
        pids = [mp.pid for r in (single, cluster) for mp in r.env.processes()]
        assert len(pids) == 2 + 4
    finally:
        envs.close()
    assert all(gone(p) for p in pids)
    assert single.server_up_at_close is True and cluster.server_up_at_close is True


def test_an_environment_that_failed_ends_every_topology() -> None:
    target = resolve_target(None, None)

    def open(env: Environment, t: Any) -> Any:
        if env.is_cluster:
            raise EnvError("no cluster today")
        return FakeRunner(env)

    envs = Environments("local", lambda: target, open)
    try:
        envs.runner(SINGLE)
        with pytest.raises(EnvError, match="no cluster today"):
            envs.runner(CLUSTER3)
        with pytest.raises(EnvError, match="no cluster today"):
            envs.runner(SINGLE)
    finally:
        envs.close()
