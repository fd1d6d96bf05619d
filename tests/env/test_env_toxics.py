"""Each toxic measurably takes effect on a live connection and stops when removed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Iterator

import nats.errors
import pytest

from env_helpers import RawNats, Watched, arun, port_of, rtt, wait_event
from harness.env.local import LocalEnvironment
from harness.toxiproxy import InvalidToxicError, NotFoundError, ProxyExistsError, Toxiproxy


@pytest.fixture(autouse=True)
def fresh_proxy(env: LocalEnvironment) -> Iterator[None]:
    """Toxics never outlive a test: the proxy is recreated after each."""
    yield
    env.reset_proxy()


def tp(env: LocalEnvironment) -> Toxiproxy:
    return env.toxiproxy


def test_latency_raises_round_trip_and_stops_when_removed(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        w = Watched()
        nc = await w.connect(env)
        try:
            base = await rtt(nc)
            tp(env).add_toxic(env.proxy_name, "latency", name="lat", latency=150, jitter=0)
            slow = await rtt(nc, n=3)
            tp(env).remove_toxic(env.proxy_name, "lat")
            after = await rtt(nc)
            assert base < 0.05, base
            assert slow >= 0.15, slow
            assert after < 0.05, after
            assert not w.disconnected.is_set()  # latency stalls, it does not disconnect
        finally:
            await w.close()

    arun(scenario())


def test_update_toxic_changes_its_attributes_live(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        w = Watched()
        nc = await w.connect(env)
        try:
            tp(env).add_toxic(env.proxy_name, "latency", name="lat", latency=50)
            assert await rtt(nc, n=3) >= 0.05
            updated = tp(env).update_toxic(env.proxy_name, "lat", latency=250)
            assert updated.attributes["latency"] == 250
            listed = {t.name: t for t in tp(env).toxics(env.proxy_name)}
            assert listed["lat"].attributes["latency"] == 250
            assert await rtt(nc, n=1) >= 0.25
        finally:
            await w.close()

    arun(scenario())


def test_bandwidth_zero_holds_a_flush_and_delivers_after_removal(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        w, obs = Watched(), Watched()
        nc = await w.connect(env)
        observer = await obs.connect(env, direct=True)
        try:
            sub = await nc.subscribe("bw.x")
            await nc.flush()
            tp(env).add_toxic(env.proxy_name, "bandwidth", name="bw0", rate=0)
            await observer.publish("bw.x", b"held")
            await observer.flush()
            flush = asyncio.ensure_future(nc.flush(timeout=5))
            done, _ = await asyncio.wait({flush}, timeout=0.3)  # a hold of 0.3 s is the point here
            assert not done, "flush answered although bandwidth is 0"
            with pytest.raises(nats.errors.TimeoutError):
                await sub.next_msg(timeout=0.05)
            tp(env).remove_toxic(env.proxy_name, "bw0")
            await asyncio.wait_for(flush, 2)
            msg = await sub.next_msg(timeout=2)
            assert msg.data == b"held"
            assert not w.disconnected.is_set()  # the stall healed without a disconnect
        finally:
            await w.close()
            await obs.close()

    arun(scenario())


def test_reset_peer_disconnects_the_client_until_removed(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        w = Watched()
        nc = await w.connect(env)
        try:
            tp(env).add_toxic(env.proxy_name, "reset_peer", name="rst", timeout=0)
            # reset_peer fires when the next data crosses the link: a PING makes the server answer
            with contextlib.suppress(Exception):
                await nc.flush(timeout=1)
            await wait_event(w.disconnected, 3, "disconnected_cb after reset_peer")
            assert not w.reconnected.is_set()
            tp(env).remove_toxic(env.proxy_name, "rst")
            await wait_event(w.reconnected, 5, "reconnected_cb after removing reset_peer")
            await nc.flush(timeout=2)
        finally:
            await w.close()

    arun(scenario())


def test_disabled_proxy_disconnects_and_refuses_until_enabled(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        w = Watched()
        nc = await w.connect(env)
        try:
            assert not tp(env).disable(env.proxy_name).enabled
            await wait_event(w.disconnected, 3, "disconnected_cb after disabling the proxy")
            with pytest.raises(ConnectionRefusedError):
                RawNats("127.0.0.1", port_of(env.client_url), "u", "p", timeout=1)
            assert tp(env).enable(env.proxy_name).enabled
            await wait_event(w.reconnected, 5, "reconnected_cb after enabling the proxy")
            await nc.flush(timeout=2)
        finally:
            await w.close()

    arun(scenario())


def test_limit_data_cuts_after_exactly_n_bytes(env: LocalEnvironment) -> None:
    creds = env.credentials
    raw = RawNats("127.0.0.1", port_of(env.client_url), creds.user, creds.password)
    try:
        tp(env).add_toxic(env.proxy_name, "limit_data", name="cut", bytes=100)
        raw.send(b"SUB lim 1\r\nPING\r\n")

        async def publish() -> None:
            obs = Watched()
            observer = await obs.connect(env, direct=True)
            await observer.publish("lim", b"x" * 1000)
            await observer.flush()
            await obs.close()

        arun(publish())
        got = raw.read_to_eof()  # the proxy closes the connection at the limit
        assert len(got) == 100, got
        assert got.startswith(b"PONG\r\nMSG lim 1 1000\r\n")
    finally:
        raw.close()

    # stops when removed: a new connection gets the whole message
    tp(env).remove_toxic(env.proxy_name, "cut")
    raw = RawNats("127.0.0.1", port_of(env.client_url), creds.user, creds.password)
    try:
        raw.send(b"SUB lim 1\r\nPING\r\n")
        raw.read_until(b"PONG\r\n")

        async def publish_again() -> None:
            obs = Watched()
            observer = await obs.connect(env, direct=True)
            await observer.publish("lim", b"y" * 1000)
            await observer.flush()
            await obs.close()

        arun(publish_again())
        head = raw.read_until(b"MSG lim 1 1000\r\n")
        assert head.endswith(b"MSG lim 1 1000\r\n")
        assert raw.read_until(b"\r\n") == b"y" * 1000 + b"\r\n"
    finally:
        raw.close()


def test_timeout_drops_data_then_closes_the_connection_when_removed(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        w = Watched()
        nc = await w.connect(env)
        try:
            t = tp(env).add_toxic(env.proxy_name, "timeout", name="to", timeout=0)
            assert t.type == "timeout"
            with pytest.raises(nats.errors.TimeoutError):
                await nc.flush(timeout=0.3)
            assert not w.disconnected.is_set()
            tp(env).remove_toxic(env.proxy_name, "to")
            await wait_event(w.disconnected, 3, "disconnect once the timeout toxic is removed")
            await wait_event(w.reconnected, 5, "reconnect after the timeout toxic")
        finally:
            await w.close()

    arun(scenario())


def test_slicer_slows_small_chunks_and_is_listed(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        w = Watched()
        nc = await w.connect(env)
        try:
            t = tp(env).add_toxic(
                env.proxy_name, "slicer", name="sl", average_size=1, size_variation=0, delay=10_000
            )  # PONG\r\n in 6 slices, 10 ms apart
            assert (t.type, t.attributes["average_size"], t.attributes["delay"]) == ("slicer", 1, 10_000)
            assert [x.name for x in tp(env).toxics(env.proxy_name)] == ["sl"]
            assert await rtt(nc, n=3) >= 0.05
            tp(env).remove_toxic(env.proxy_name, "sl")
            assert await rtt(nc) < 0.04
        finally:
            await w.close()

    arun(scenario())


def test_slow_close_is_accepted_listed_and_harmless_to_a_live_connection(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        w = Watched()
        nc = await w.connect(env)
        try:
            t = tp(env).add_toxic(env.proxy_name, "slow_close", name="sc", stream="upstream", delay=200)
            assert (t.type, t.stream, t.attributes["delay"]) == ("slow_close", "upstream", 200)
            assert tp(env).get_proxy(env.proxy_name).toxics[0].name == "sc"
            await nc.flush(timeout=2)
            tp(env).remove_toxic(env.proxy_name, "sc")
            assert tp(env).toxics(env.proxy_name) == []
        finally:
            await w.close()

    arun(scenario())


def test_toxic_context_manager_removes_the_toxic_on_error(env: LocalEnvironment) -> None:
    with pytest.raises(RuntimeError):
        with tp(env).toxic(env.proxy_name, "latency", latency=10):
            assert len(tp(env).toxics(env.proxy_name)) == 1
            raise RuntimeError("boom")
    assert tp(env).toxics(env.proxy_name) == []


def test_api_errors_are_typed_with_one_line_first(env: LocalEnvironment) -> None:
    with pytest.raises(InvalidToxicError) as ei:
        tp(env).add_toxic(env.proxy_name, "nonsense")
    assert str(ei.value).splitlines()[0] == "unknown toxic type 'nonsense'"
    with pytest.raises(NotFoundError) as nf:
        tp(env).remove_toxic(env.proxy_name, "no-such-toxic")
    assert "answered 404" in str(nf.value).splitlines()[0]
    tp(env).add_toxic(env.proxy_name, "latency", name="dup", latency=1)
    with pytest.raises(ProxyExistsError):
        tp(env).add_toxic(env.proxy_name, "latency", name="dup", latency=1)

