"""The compose cluster (`--env compose --cluster 3`): up with real routes that all go through
the route proxies, clients kept behind their proxies, node faults as container operations
(stepdown, kill and restart of the leader, pause), and down leaving nothing of the project."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any, Iterator

import nats
import pytest
from nats.js.api import StreamConfig

from compose_helpers import arun, wait_until
from harness import clusterview as cv
from harness.env import Topology, make_environment
from harness.env.cluster import not_ready, route_peers
from harness.env.compose import (
    OWNER_LABEL,
    PROJECT_LABEL,
    ComposeClusterEnvironment,
    docker_client,
    project_resources,
    reap_stale_projects,
)
from harness.env.process import http_ok
from harness.observer import Replicated

pytestmark = pytest.mark.compose

ROUTE_PORTS = {7012, 7013, 7021, 7023, 7031, 7032}  # compose/cluster/toxiproxy.json


@pytest.fixture(scope="module")
def compose_cluster() -> Iterator[ComposeClusterEnvironment]:
    """One compose cluster for the module; each test heals what it breaks."""
    with ComposeClusterEnvironment() as env:
        yield env


def _toxiproxy_ip(env: ComposeClusterEnvironment) -> str:
    c = env._container("toxiproxy")
    c.reload()
    (net,) = c.attrs["NetworkSettings"]["Networks"].values()
    return str(net["IPAddress"])


def test_compose_cluster_up_ready_routes_through_proxies_and_down_leaves_nothing() -> None:
    env = make_environment("compose", topology=Topology(3))
    assert isinstance(env, ComposeClusterEnvironment)
    client = docker_client()
    try:
        with env:
            assert not_ready(env.nodes) == "" and env.ready_seconds > 0
            kinds = sorted(r.split()[0] for r in project_resources(client, env.project))
            assert kinds == ["container"] * 4 + ["network"] + ["volume"] * 3, kinds  # a store per node
            # every published port on loopback only
            for c in client.containers.list(filters={"label": [f"{PROJECT_LABEL}={env.project}"]}):
                for bindings in (c.ports or {}).values():
                    assert all(b["HostIp"] == "127.0.0.1" for b in bindings or ()), (c.name, c.ports)
            proxies = env.toxiproxy.proxies()
            assert {n: p.upstream for n, p in proxies.items()} == {
                "nats": "n1:4222", "nats-n2": "n2:4222", "nats-n3": "n3:4222",
                **{f"route-n{i}-n{j}": f"n{j}:6222" for i in (1, 2, 3) for j in (1, 2, 3) if i != j}}
            assert sorted(env.route_proxies("n2")) == ["route-n1-n2", "route-n2-n1", "route-n2-n3", "route-n3-n2"]
            toxi = _toxiproxy_ip(env)
            solicited_via_proxies: list[dict[str, Any]] = []
            for n in env.nodes:
                assert http_ok(f"{n.monitor_url}/healthz?js-enabled-only=true")
                routez = env.monitor(n.name, "/routez") or {}
                assert set(route_peers(routez)) == {"n1", "n2", "n3"} - {n.name}
                # every route connection's far end is Toxiproxy, which reaches a node's cluster port
                # only through a route proxy: no node talks to another directly. (`did_solicit` alone
                # does not say which end dialled: when both sides solicit at once, a kept
                # connection marked solicited may show the proxy's outgoing port: seen here now and then.)
                for r in routez["routes"]:
                    assert r["ip"] == toxi, (n.name, r)
                solicited_via_proxies += [r for r in routez["routes"] if r["did_solicit"] and r["port"] in ROUTE_PORTS]
                with urllib.request.urlopen(f"{n.monitor_url}/varz", timeout=5) as resp:
                    varz = json.load(resp)
                assert (varz["server_name"], varz["jetstream"]["config"]["store_dir"]) == (n.name, "/data/jetstream")
            assert solicited_via_proxies  # the routes are the configured ones, to toxiproxy:70XY
            assert env.versions()["nats-server"].startswith("2.")
            assert env.credentials.password not in env.describe() + env.server_log_tail(100)
    finally:
        left = project_resources(client, env.project)
        client.close()
    assert left == []
    env.stop()  # a second stop is harmless


def test_a_compose_partition_cuts_every_route_on_both_sides_and_heals(compose_cluster: ComposeClusterEnvironment) -> None:
    env = compose_cluster
    for p in env.route_proxies("n2"):
        env.toxiproxy.disable(p)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = cv.routes(env)
            if not r["n2"] and all("n2" not in peers for other, peers in r.items() if other != "n2"):
                break
            time.sleep(0.05)
        assert r["n2"] == {}, r
        assert list(r["n1"]) == ["n3"] and list(r["n3"]) == ["n1"], r  # the majority keeps its route
    finally:
        env.reset_proxy()  # every proxy enabled, readiness asked again
    assert not_ready(env.nodes) == ""


def test_compose_cluster_stepdown_and_a_killed_leader_restarted(compose_cluster: ComposeClusterEnvironment) -> None:
    env = compose_cluster

    async def info(nc: nats.NATS, subject: str) -> dict[str, Any]:
        return json.loads((await nc.request(subject, b"", timeout=5)).data)

    async def leader(nc: nats.NATS, not_: str, within: float) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                now = ((await info(nc, "$JS.API.STREAM.INFO.CCX")).get("cluster") or {}).get("leader") or ""
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                now = ""
            if now and now != not_:
                return now
            await asyncio.sleep(0.1)
        return ""

    async def go() -> tuple[str, str, str, bool, list[str]]:
        nc = await nats.connect(**env.connect_options(direct=True), reconnect_time_wait=0.2, max_reconnect_attempts=-1)
        js = nc.jetstream()
        try:
            await Replicated(js, 3).add_stream(StreamConfig(name="CCX", subjects=["ccx.>"]))
            for i in range(5):
                await js.publish("ccx.m", str(i).encode())
            first = await leader(nc, "", 5)
            await nc.request("$JS.API.STREAM.LEADER.STEPDOWN.CCX", b"", timeout=5)
            stepped = await leader(nc, first, 5)
            await asyncio.to_thread(env.kill_node, stepped)
            running = await asyncio.to_thread(env.node_running, stepped)
            dead = [name for name, _ in await asyncio.to_thread(env.dead_components)]
            elected = await leader(nc, stepped, 15)
            await asyncio.to_thread(env.restart_node, stepped)  # returns once the cluster is ready
            return first, stepped, elected, running, dead
        finally:
            await nc.close()

    try:
        first, stepped, elected, running, dead = arun(go(), timeout=90)
    finally:
        for n in env.nodes:
            if not env.node_running(n.name):
                env.restart_node(n.name)
    assert first and stepped and stepped != first  # the stepdown moved the leader
    assert (running, dead) == (False, [f"nats-server-{stepped}"])  # the kill is real, and seen
    assert elected and elected != stepped  # a new leader without the killed node
    assert env.dead_components() == [] and not_ready(env.nodes) == ""

    def agreed() -> bool:
        copies = cv.copies(env, "CCX")
        return all(c and (c["messages"], c["first_seq"], c["last_seq"]) == (5, 1, 5) for c in copies.values())

    wait_until(agreed, 10, "every node's copy of CCX holds the 5 messages after the restart")


def test_a_paused_compose_node_answers_nothing_until_resumed(compose_cluster: ComposeClusterEnvironment) -> None:
    env = compose_cluster
    env.pause_node("n3")
    try:
        assert env.node_running("n3")  # paused is not dead
        assert not http_ok(f"{env.node('n3').monitor_url}/healthz", timeout=0.5)
        assert http_ok(f"{env.node('n1').monitor_url}/healthz?js-enabled-only=true")
    finally:
        env.resume_node("n3")
    env.wait_ready()
    assert env.dead_components() == []


def test_the_compose_cluster_client_only_ever_knows_the_proxies(compose_cluster: ComposeClusterEnvironment) -> None:
    env = compose_cluster
    proxy_ports = {n.ports["proxy"] for n in env.nodes}

    async def go() -> tuple[list[Any], int]:
        nc = await nats.connect(**env.connect_options(), allow_reconnect=False)
        try:
            return list(nc._server_info.get("connect_urls") or []), nc.connected_url.port
        finally:
            await nc.close()

    told, port = arun(go())
    assert told == [] and port == env.nodes[0].ports["proxy"] and port in proxy_ports


def test_the_compose_cluster_of_a_dead_owner_is_reaped() -> None:
    # An owner mark naming a process that does not exist: the cluster of a SIGKILLed run.
    env = ComposeClusterEnvironment(owner="999999999:1.00")
    env.start()
    client = docker_client()
    try:
        assert {c.labels[OWNER_LABEL] for c in env._containers()} == {"999999999:1.00"}
        assert len(env._containers()) == 4
        assert env.project in reap_stale_projects(client)
        assert project_resources(client, env.project) == []
    finally:
        env.stop()
        client.close()
