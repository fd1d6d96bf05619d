"""The compose environment starts, answers on loopback, keeps its credentials out of sight,
and leaves nothing of its project behind: not on stop, not after its owner died."""

from __future__ import annotations

import urllib.request

import pytest

from harness.env import make_environment
from harness.env.compose import (
    OWNER_LABEL,
    PROJECT_LABEL,
    ComposeEnvironment,
    docker_client,
    project_resources,
    reap_stale_projects,
)
from harness.env.base import Credentials
from harness.errors import EnvError

pytestmark = pytest.mark.compose


def test_start_answers_on_loopback_and_stop_removes_everything() -> None:
    env = make_environment("compose")
    assert isinstance(env, ComposeEnvironment)
    client = docker_client()
    with env:
        found = project_resources(client, env.project)
        assert sorted(r.split()[0] for r in found) == ["container", "container", "network", "volume"], found
        for url in (env.client_url, env.direct_url, env.monitor_url, env.toxiproxy_url):
            assert "127.0.0.1:" in url and "@" not in url
        with urllib.request.urlopen(f"{env.monitor_url}/healthz", timeout=5) as r:
            assert r.status == 200
        proxy = env.toxiproxy.get_proxy(env.proxy_name)
        assert (proxy.listen.endswith(":4222"), proxy.upstream) == (True, "nats:4222")
        versions = env.versions()
        assert versions["toxiproxy"] and versions["nats-server"].startswith("2.")
        # Every published port is bound to loopback only.
        for c in client.containers.list(filters={"label": [f"{PROJECT_LABEL}={env.project}"]}):
            for bindings in (c.ports or {}).values():
                assert all(b["HostIp"] == "127.0.0.1" for b in bindings or ()), (c.name, c.ports)
    assert project_resources(client, env.project) == []
    env.stop()  # a second stop is a no-op


def test_credentials_never_printed(compose_env: ComposeEnvironment) -> None:
    password = compose_env.credentials.password
    shown = [
        compose_env.describe(),
        repr(compose_env.credentials),
        str(compose_env.endpoints),
        compose_env.server_log_tail(200),
        compose_env._scrub(f"output mentioning {password}"),
    ]
    assert all(password not in text for text in shown)


def test_reap_removes_the_stack_of_a_dead_owner() -> None:
    # An owner mark naming a process that does not exist: the stack of a SIGKILLed run.
    env = ComposeEnvironment(owner="999999999:1.00")
    env.start()
    try:
        client = docker_client()
        labels = {c.labels[OWNER_LABEL] for c in env._containers()}
        assert labels == {"999999999:1.00"}
        assert env.project in reap_stale_projects(client)
        assert project_resources(client, env.project) == []
    finally:
        env.stop()


def test_reap_leaves_live_and_manual_stacks_alone(compose_env: ComposeEnvironment) -> None:
    assert compose_env.project not in reap_stale_projects(docker_client())
    assert compose_env.server_running()


def test_failed_start_tears_down_and_says_why_without_the_password() -> None:
    env = ComposeEnvironment()
    # A password nats-server cannot parse from its environment (leading digit): the nats
    # container exits at start-up, after compose created everything.
    env._creds = Credentials(user="chaos-test", password="1k2" + env.credentials.password)
    with pytest.raises(EnvError) as info:
        with env:
            pass
    text = str(info.value)
    assert "nats container exited" in text and "could not be parsed" in text
    assert env.credentials.password not in text
    assert project_resources(docker_client(), env.project) == []
