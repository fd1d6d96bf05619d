"""Server-level faults of the compose backend, observed from a nats-py client through the proxy."""

from __future__ import annotations

import asyncio

import pytest
from compose_helpers import arun, await_event, connect, wait_until

from harness.env.compose import ComposeEnvironment

pytestmark = pytest.mark.compose


async def watched_client(env: ComposeEnvironment) -> tuple[object, dict[str, asyncio.Event]]:
    events = {name: asyncio.Event() for name in ("disconnected", "reconnected", "lame_duck")}

    # nats-py wants coroutine functions, not lambdas returning coroutines.
    async def disconnected() -> None:
        events["disconnected"].set()

    async def reconnected() -> None:
        events["reconnected"].set()

    async def lame_duck() -> None:
        events["lame_duck"].set()

    async def quiet_error(_e: Exception) -> None:
        pass

    nc = await connect(
        env,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        lame_duck_mode_cb=lame_duck,
        error_cb=quiet_error,
    )
    return nc, events


def test_pause_holds_the_client_and_unpause_releases_it(healthy_env: ComposeEnvironment) -> None:
    async def flow() -> None:
        nc, events = await watched_client(healthy_env)
        try:
            await nc.flush(timeout=5)
            healthy_env.pause_server()
            try:
                assert healthy_env.server_running(), "a paused server counts as running"
                flush = asyncio.create_task(nc.flush(timeout=20))
                done, _ = await asyncio.wait({flush}, timeout=1.0)
                assert not done, "a paused nats-server answered PING"
            finally:
                healthy_env.resume_server()
            await asyncio.wait_for(flush, 10)
            assert not events["disconnected"].is_set()
        finally:
            await nc.close()

    arun(flow())


def test_kill_drops_the_client_and_restart_brings_it_back_with_the_store(healthy_env: ComposeEnvironment) -> None:
    async def flow() -> None:
        nc, events = await watched_client(healthy_env)
        try:
            js = nc.jetstream()
            await js.add_stream(name="DURABLE", subjects=["durable.>"])
            await js.publish("durable.one", b"kept across a kill")
            healthy_env.kill_server()
            assert not healthy_env.server_running()
            await await_event(events["disconnected"], 10, "client saw the disconnect")
            healthy_env.restart_server()
            await await_event(events["reconnected"], 15, "client reconnected through the proxy")
            info = await js.stream_info("DURABLE")  # same volume: the stream survived
            assert info.state.messages == 1
            await js.delete_stream("DURABLE")
        finally:
            await nc.close()

    arun(flow())


def test_restart_disconnects_and_the_client_reconnects(healthy_env: ComposeEnvironment) -> None:
    ports_before = healthy_env.ports

    async def flow() -> None:
        nc, events = await watched_client(healthy_env)
        try:
            await nc.flush(timeout=5)
            healthy_env.restart_server()
            await await_event(events["disconnected"], 10, "client saw the restart")
            await await_event(events["reconnected"], 15, "client reconnected")
            await nc.flush(timeout=5)
        finally:
            await nc.close()

    arun(flow())
    assert healthy_env.ports == ports_before


def test_lame_duck_tells_the_client(healthy_env: ComposeEnvironment) -> None:
    async def flow() -> None:
        nc, events = await watched_client(healthy_env)
        try:
            await nc.flush(timeout=5)
            healthy_env.lame_duck()
            await await_event(events["lame_duck"], 10, "client heard lame-duck mode")
        finally:
            await nc.close()

    arun(flow())
    wait_until(
        lambda: "Entering lame duck mode" in healthy_env.server_log_tail(50), 10, "lame duck in the server log"
    )
    # With its last client gone, the server ends lame duck and exits (the container stops).
    wait_until(lambda: not healthy_env.server_running(), 40, "nats-server exited after lame duck")
