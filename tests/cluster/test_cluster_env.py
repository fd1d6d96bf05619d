"""The local 3-node cluster: up with real routes through the route proxies, clients kept
behind their proxies, a partition that is real on both sides, leaders that move, and down
leaving nothing behind."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats
import psutil
import pytest
from nats.js.api import StreamConfig

from harness import clusterview as cv
from harness.env.cluster import LocalClusterEnvironment, not_ready, route_peers
from harness.env.process import http_ok, port_in_use
from harness.observer import Replicated


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_up_ready_routes_through_proxies_and_down_leaves_nothing() -> None:
    env = LocalClusterEnvironment()
    with env:
        assert not_ready(env.nodes) == ""
        assert len(env.nodes) == 3 and all(n.alive() for n in env.nodes)
        proxies = env.toxiproxy.proxies()
        route_ports = {p.port for name, p in proxies.items() if name.startswith("route-")}
        solicited = []
        for n in env.nodes:
            assert http_ok(f"{n.monitor_url}/healthz?js-enabled-only=true")
            assert set(route_peers(env.monitor(n.name, "/routez"))) == {m.name for m in env.nodes} - {n.name}
            assert proxies[n.proxy].upstream == f"127.0.0.1:{n.ports['nats']}"
            solicited += [r for r in (env.monitor(n.name, "/routez") or {})["routes"] if r.get("did_solicit")]
        # no route a node solicited goes to a real cluster port (they go to route proxies; a pooled
        # route may also list the proxy's own outgoing port); the partition test proves the rest
        real = {n.ports["cluster"] for n in env.nodes}
        assert solicited and not any(r["port"] in real for r in solicited), (solicited, real)
        assert any(r["port"] in route_ports for r in solicited), (solicited, route_ports)
        assert len([p for p in proxies if p.startswith("route-")]) == 6  # one per direction
        pids = [n.proc.pid for n in env.nodes] + [env.toxi.pid]
        ports = [p for n in env.nodes for p in n.ports.values()]
        rundir = env.rundir
        assert rundir is not None and rundir.is_dir()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert not rundir.exists()
    assert not any(port_in_use(p) for p in ports)
    env.stop()  # a second stop is harmless


def test_the_client_only_ever_knows_the_proxies(cluster: LocalClusterEnvironment) -> None:
    """no_advertise: the client is told no real address, so after its node dies it reconnects
    to another node's proxy, never around Toxiproxy."""
    proxy_ports = {n.ports["proxy"] for n in cluster.nodes}

    async def go() -> tuple[list[Any], int, int]:
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        nc = await nats.connect(**cluster.connect_options(), reconnect_time_wait=0.1, reconnected_cb=on_reconnect)
        try:
            first = nc.connected_url.port
            told = list(nc._server_info.get("connect_urls") or [])
            await asyncio.to_thread(cluster.kill_node, cluster.nodes[0].name)
            await asyncio.wait_for(reconnected.wait(), 10)
            return told, first, nc.connected_url.port
        finally:
            await nc.close()

    try:
        told, first, then = asyncio.run(go())
    finally:
        cluster.restart_node(cluster.nodes[0].name)
    assert told == []
    assert first == cluster.nodes[0].ports["proxy"]
    assert then in proxy_ports and then != first


def test_a_partition_cuts_every_route_on_both_sides_and_heals(cluster: LocalClusterEnvironment) -> None:
    node = "n2"
    cut = cluster.route_proxies(node)
    assert len(cut) == 4  # n2 -> n1, n2 -> n3 and back
    for p in cut:
        cluster.toxiproxy.disable(p)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = cv.routes(cluster)
            if not r[node] and all(node not in peers for other, peers in r.items() if other != node):
                break
            time.sleep(0.05)
        assert r[node] == {}, r
        assert r["n1"] == {"n3": r["n1"]["n3"]} and r["n3"] == {"n1": r["n3"]["n1"]}, r  # the majority keeps its route
    finally:
        cluster.reset_proxy()  # every proxy enabled, readiness asked again
    assert not_ready(cluster.nodes) == ""


def test_stream_and_consumer_leaders_step_down_and_replicas_agree(cluster: LocalClusterEnvironment) -> None:
    async def go() -> None:
        nc = await nats.connect(**cluster.connect_options(direct=True))
        js = nc.jetstream()
        try:
            # through the observer's prepare wrapper: it waits out placement right after a heal
            await Replicated(js, 3).add_stream(StreamConfig(name="CLX", subjects=["clx.>"]))
            for i in range(5):
                await js.publish("clx.m", str(i).encode())
            await js.pull_subscribe("clx.m", durable="d")

            async def info(subject: str) -> dict:
                return json.loads((await nc.request(subject, b"", timeout=5)).data)

            s1 = (await info("$JS.API.STREAM.INFO.CLX"))["cluster"]
            assert len(s1["replicas"]) == 2
            await nc.request("$JS.API.STREAM.LEADER.STEPDOWN.CLX", b"", timeout=5)
            for _ in range(50):
                s2 = (await info("$JS.API.STREAM.INFO.CLX"))["cluster"]
                if s2.get("leader") and s2["leader"] != s1["leader"]:
                    break
                await asyncio.sleep(0.1)
            assert s2["leader"] != s1["leader"]
        finally:
            await nc.close()

    asyncio.run(go())
    deadline = time.monotonic() + 5
    while True:
        copies = cv.copies(cluster, "CLX")
        if all(c and c["messages"] == 5 and "d" in c["consumers"] for c in copies.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {n: (c["messages"], c["first_seq"], c["last_seq"]) for n, c in copies.items()} == {
        "n1": (5, 1, 5), "n2": (5, 1, 5), "n3": (5, 1, 5)}


def test_a_killed_node_is_a_dead_component(cluster: LocalClusterEnvironment) -> None:
    assert cluster.dead_components() == []
    cluster.kill_node("n3")
    try:
        dead = cluster.dead_components()
        assert [name for name, _ in dead] == ["nats-server-n3"]
        assert "exited with status -9" in dead[0][1]
    finally:
        cluster.restart_node("n3")
    assert cluster.dead_components() == []


def test_a_durable_prepare_overlaps_the_creates_and_leaves_the_stream_whole(cluster: LocalClusterEnvironment) -> None:
    """prepare_stream_with_durable on a cluster sends the stream's create, the durable's and the
    publishes at once: the durable's first create is answered 'stream not found' and sent again,
    and what the flow finds is the same as one after the other: every message once, in order,
    a durable with a leader and every message pending. Without a stream create in flight, a
    consumer's 'stream not found' is raised at once (no retry hides a real error)."""
    from harness.flows import Names
    from harness.flows.next import prepare_stream_with_durable

    names = Names(tag="ovl")

    async def go() -> None:
        nc = await nats.connect(**cluster.connect_options(direct=True))
        js = nc.jetstream()
        sent: list[str] = []
        real_add_consumer = js.add_consumer

        async def counting(*a: Any, **k: Any) -> Any:
            sent.append("consumer")
            return await real_add_consumer(*a, **k)

        js.add_consumer = counting  # type: ignore[method-assign]
        try:
            t = time.monotonic()
            await prepare_stream_with_durable(Replicated(js, 3), names, {"count": 10})
            took = time.monotonic() - t
            ci = await js.consumer_info(names.stream, names.consumer)
            assert ci.cluster is not None and ci.cluster.leader and ci.num_pending == 10
            assert len(ci.cluster.replicas or []) == 2
            psub = await js.pull_subscribe_bind(names.consumer, names.stream)
            msgs = await psub.fetch(10, timeout=5)
            assert [(m.metadata.sequence.stream, m.data) for m in msgs] == [(i + 1, str(i).encode()) for i in range(10)]
            assert len(sent) >= 2, f"the durable's create was sent {len(sent)} time(s): not before the stream existed"
            print(f"prepare took {took * 1000:.0f} ms, durable create sent {len(sent)} times")
            with pytest.raises(nats.js.errors.NotFoundError):
                await Replicated(js, 3).add_consumer("NO_SUCH_STREAM", durable_name="x")
        finally:
            await js.delete_stream(names.stream)
            await nc.close()

    asyncio.run(go())
