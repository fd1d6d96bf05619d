"""Fixtures for the engine's tests: one real environment per module, a runner with short budgets."""

from __future__ import annotations

from typing import Iterator

import pytest
from engine_helpers import FAST, agent_processes

from harness.env.local import LocalEnvironment
from harness.runner import Runner


@pytest.fixture(scope="module")
def env() -> Iterator[LocalEnvironment]:
    with LocalEnvironment() as e:
        yield e


@pytest.fixture(scope="module")
def runner(env: LocalEnvironment) -> Iterator[Runner]:
    r = Runner(env, run_seed=1234, settings=FAST)
    try:
        yield r
    finally:
        r.close()
    assert agent_processes() == [], "an agent outlived the runner"
