"""Fixtures for the environment tests: real nats-server and toxiproxy-server, a private run root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from harness.env.local import LocalEnvironment


@pytest.fixture(scope="session", autouse=True)
def private_run_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every run directory of this suite away from the user's (and other suites') runs."""
    root = tmp_path_factory.mktemp("runs")
    old = os.environ.get("NATS_CHAOS_RUN_ROOT")
    os.environ["NATS_CHAOS_RUN_ROOT"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("NATS_CHAOS_RUN_ROOT", None)
        else:
            os.environ["NATS_CHAOS_RUN_ROOT"] = old


@pytest.fixture(scope="module")
def env() -> Iterator[LocalEnvironment]:
    """One environment shared by a module whose tests do not hurt the server (proxy reset after each)."""
    with LocalEnvironment() as e:
        yield e


@pytest.fixture
def own_env() -> Iterator[LocalEnvironment]:
    """A fresh environment for a test that pauses, kills or restarts the server."""
    with LocalEnvironment() as e:
        yield e


@pytest.fixture
def run_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run root of this test alone (for tests about reaping and the `harness env` state file)."""
    root = tmp_path / "runs"
    root.mkdir(mode=0o700)
    monkeypatch.setenv("NATS_CHAOS_RUN_ROOT", str(root))
    return root
