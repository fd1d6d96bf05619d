"""Traffic through the compose stack: JetStream through the proxy, the observer direct,
and a bandwidth-0 toxic that holds a flush until it is removed."""

from __future__ import annotations

import asyncio

import pytest
from compose_helpers import arun, connect

from harness.env.compose import ComposeEnvironment
from harness.env.local import nats_handshake

pytestmark = pytest.mark.compose


def test_jetstream_publish_and_consume_through_the_proxy(healthy_env: ComposeEnvironment) -> None:
    async def flow() -> bytes:
        nc = await connect(healthy_env)
        try:
            js = nc.jetstream()
            await js.add_stream(name="TRAFFIC", subjects=["traffic.>"])
            ack = await js.publish("traffic.one", b"hello through toxiproxy")
            assert ack.seq == 1
            sub = await js.pull_subscribe("traffic.one", durable="reader")
            [msg] = await sub.fetch(1, timeout=5)
            await msg.ack_sync()
            await js.delete_stream("TRAFFIC")
            return msg.data
        finally:
            await nc.close()

    assert arun(flow()) == b"hello through toxiproxy"


def test_observer_connects_directly_bypassing_the_proxy(healthy_env: ComposeEnvironment) -> None:
    async def flow() -> None:
        healthy_env.toxiproxy.disable(healthy_env.proxy_name)
        try:
            port = int(healthy_env.client_url.rsplit(":", 1)[1])
            assert not nats_handshake("127.0.0.1", port)  # the proxy is down ...
            nc = await connect(healthy_env, direct=True)  # ... the observer's path is not
            try:
                await nc.flush(timeout=5)
                assert nc.connected_url.port != port
            finally:
                await nc.close()
        finally:
            healthy_env.toxiproxy.enable(healthy_env.proxy_name)

    arun(flow())


def test_bandwidth_zero_holds_a_flush_and_releases_it_on_removal(healthy_env: ComposeEnvironment) -> None:
    tp, proxy = healthy_env.toxiproxy, healthy_env.proxy_name

    async def flow() -> None:
        nc = await connect(healthy_env)
        try:
            await nc.flush(timeout=5)
            toxic = tp.add_toxic(proxy, "bandwidth", stream="downstream", rate=0)
            try:
                flush = asyncio.create_task(nc.flush(timeout=20))
                done, _ = await asyncio.wait({flush}, timeout=1.0)
                assert not done, "the PONG got through a bandwidth-0 toxic"
            finally:
                tp.remove_toxic(proxy, toxic.name)
            await asyncio.wait_for(flush, 10)  # held bytes are delivered: no disconnect
            assert nc.is_connected
        finally:
            await nc.close()

    arun(flow())
