"""Fixtures for the cluster tests: a real 3-node cluster behind Toxiproxy, a private run root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from harness.env.cluster import LocalClusterEnvironment


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
def cluster() -> Iterator[LocalClusterEnvironment]:
    """One cluster for a module whose tests heal what they break (readiness asked again after each)."""
    with LocalClusterEnvironment() as e:
        yield e

