"""Server-level faults do what they say, seen from a client: pause/resume, kill, restart, lame duck."""

from __future__ import annotations

import asyncio
import time

import nats
import nats.errors
import pytest
from nats.js.api import StreamConfig

import socket

from env_helpers import RawNats, Watched, arun, gone, port_of, rtt, wait_event, wait_until
from harness.env.local import LocalEnvironment, nats_handshake
from harness.env.process import http_ok


def test_pause_freezes_the_server_and_resume_brings_it_back(own_env: LocalEnvironment) -> None:
    env = own_env

    async def scenario() -> None:
        w = Watched()
        nc = await w.connect(env)
        try:
            await rtt(nc, n=1)
            env.pause_server()
            assert env.server_running()  # paused is not dead
            # A flush that is held, not one that times out: nats-py 2.16 leaves a timed-out
            # flush's future in its PONG queue and the late PONG then kills its read loop.
            flush = asyncio.ensure_future(nc.flush(timeout=5))
            done, _ = await asyncio.wait({flush}, timeout=0.3)  # holding 0.3 s is the point
            assert not done, "a paused server answered a PING"
            assert not http_ok(f"{env.monitor_url}/healthz", timeout=0.2)
            env.resume_server()
            await asyncio.wait_for(flush, 2)
            await nc.flush(timeout=2)
            assert http_ok(f"{env.monitor_url}/healthz")
            assert not w.disconnected.is_set()  # a stall, not a disconnect
        finally:
            await w.close()

    arun(scenario())


def test_pause_returns_only_once_the_server_is_frozen(own_env: LocalEnvironment) -> None:
    # kill(SIGSTOP) returns before threads on another CPU have stopped; pause_server must not
    env = own_env
    c = env.credentials
    raw = RawNats("127.0.0.1", port_of(env.direct_url), c.user, c.password)
    try:
        for _ in range(10):
            env.pause_server()
            raw.send(b"PING\r\n")
            raw.sock.settimeout(0.05)
            with pytest.raises(socket.timeout):
                raw.read_until(b"PONG\r\n")  # a frozen server answers nothing
            env.resume_server()
            raw.sock.settimeout(2)
            raw.read_until(b"PONG\r\n")
    finally:
        raw.close()


def test_kill_drops_the_client_and_restart_brings_it_back(own_env: LocalEnvironment) -> None:
    env = own_env

    async def scenario() -> None:
        w = Watched()
        nc = await w.connect(env)
        try:
            pid = env.nats.pid
            env.kill_server()
            assert not env.server_running() and gone(pid)
            await wait_event(w.disconnected, 3, "disconnected_cb after the server was killed")
            assert not http_ok(f"{env.monitor_url}/healthz", timeout=0.2)
            env.restart_server()
            await wait_event(w.reconnected, 5, "reconnected_cb after restart")
            await nc.flush(timeout=2)
        finally:
            await w.close()

    arun(scenario())


def test_restart_keeps_ports_and_jetstream_data(own_env: LocalEnvironment) -> None:
    env = own_env
    before = env.endpoints

    async def scenario() -> None:
        observer = await nats.connect(**env.connect_options(direct=True))
        try:
            js = observer.jetstream()
            await js.add_stream(StreamConfig(name="KEEP", subjects=["keep.>"]))
            for i in range(3):
                await js.publish("keep.x", f"k{i}".encode())
        finally:
            await observer.close()

        w = Watched()
        nc = await w.connect(env)
        try:
            old_pid = env.nats.pid
            env.restart_server()
            assert env.nats.pid != old_pid and gone(old_pid)
            assert env.endpoints == before  # same ports: clients find it where it was
            await wait_event(w.reconnected, 5, "client reconnected through the proxy after restart")
            js = nc.jetstream()
            info = await js.stream_info("KEEP")
            assert info.state.messages == 3
            sub = await js.pull_subscribe("keep.x", durable="after")
            msgs = await sub.fetch(3, timeout=5)
            assert [m.data for m in msgs] == [b"k0", b"k1", b"k2"]
        finally:
            await w.close()

    arun(scenario())


def test_lame_duck_tells_clients_stops_accepting_and_exits(own_env: LocalEnvironment) -> None:
    env = own_env

    async def scenario() -> None:
        w = Watched()
        await w.connect(env)
        try:
            t0 = time.monotonic()
            env.lame_duck()
            await wait_event(w.lame_duck, 3, "lame_duck_mode_cb (INFO with ldm) on the client")
            # in lame-duck mode the server closes its client listener at once
            assert not nats_handshake("127.0.0.1", port_of(env.direct_url), timeout=0.5)
            await wait_event(w.disconnected, 10, "server closed the client during lame duck")
            await asyncio_wait_until(lambda: not env.server_running(), 10, "server exited after lame duck")
            assert time.monotonic() - t0 < 15
        finally:
            await w.close()

    arun(scenario(), timeout=30)
    env.restart_server()  # and it can come back
    assert http_ok(f"{env.monitor_url}/healthz")


async def asyncio_wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


def test_server_log_tail_is_available(own_env: LocalEnvironment) -> None:
    wait_until(lambda: "Server is ready" in own_env.server_log_tail(200), 5, "'Server is ready' in the log")


def test_stop_while_paused_ends_the_server_without_waiting_out_the_grace() -> None:
    env = LocalEnvironment()
    with env:
        pid = env.nats.pid
        env.pause_server()
        t0 = time.monotonic()
    assert gone(pid)
    assert time.monotonic() - t0 < 1.0  # SIGCONT before SIGTERM: no SIGKILL after 3 s needed
