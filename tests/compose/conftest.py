"""Compose backend tests: they need a Docker API (Docker, or the podman service) and skip without one.

`make test-compose` provides one (scripts/compose-stack.sh starts a podman service when no
Docker answers) and the local images; plain `make test` on a machine without a Docker API
skips these tests with the reason, once.
"""

from __future__ import annotations

import os

import pytest

from harness.env.compose import ComposeEnvironment, compose_command, docker_unavailable_reason
from harness.errors import EnvError

MARKER = "compose: needs a Docker API and a Compose CLI (Docker or the podman service); skipped without one"
_reason: list[str | None] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def unavailable_reason() -> str | None:
    """Why the compose tests cannot run here (None if they can); computed once per session."""
    if not _reason:
        reason = docker_unavailable_reason()
        if reason is None:
            try:
                compose_command()
            except EnvError as e:
                reason = e.summary
        _reason.append(reason)
    return _reason[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if item.get_closest_marker("compose")]
    if not mine:
        return
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("NATS_CHAOS_REQUIRE_COMPOSE"):  # set by `make test-compose`
        raise pytest.UsageError(f"compose tests required but cannot run: {reason}")
    skip = pytest.mark.skip(reason=f"compose tests need a Docker API: {reason} (see compose/README.md)")
    for item in mine:
        item.add_marker(skip)


@pytest.fixture(scope="module")
def compose_env():
    """One running compose stack shared by a module's tests; taken down at the end."""
    with ComposeEnvironment(ready_timeout=30) as env:
        yield env


@pytest.fixture
def healthy_env(compose_env: ComposeEnvironment) -> ComposeEnvironment:
    """The shared stack, with nats-server up and a clean proxy before and after the test."""
    _heal(compose_env)
    yield compose_env
    _heal(compose_env)


def _heal(env: ComposeEnvironment) -> None:
    c = env._container("nats")
    c.reload()
    if c.status == "paused":
        env.resume_server()
    if not env.server_running():
        env.restart_server()
    env.reset_proxy()
