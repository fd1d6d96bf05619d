"""The local environment starts, serves JetStream through the proxy and directly, refuses strangers, stops."""

from __future__ import annotations

import nats
import nats.errors
import psutil
import pytest
from nats.js.api import StreamConfig

from env_helpers import arun, gone, port_of
from harness.env.local import LocalEnvironment
from harness.env.process import http_ok, port_in_use


def test_starts_ready_and_stops_leaving_nothing() -> None:
    env = LocalEnvironment()
    with env:
        assert env.server_running()
        assert http_ok(f"{env.monitor_url}/healthz")
        proxy = env.toxiproxy.get_proxy(env.proxy_name)
        assert proxy.enabled
        assert proxy.listen == f"127.0.0.1:{port_of(env.client_url)}"
        assert proxy.upstream == f"127.0.0.1:{port_of(env.direct_url)}"
        for url in (env.client_url, env.direct_url, env.monitor_url, env.toxiproxy_url):
            assert "127.0.0.1" in url
        assert env.versions()["nats-server"].startswith("v2.")
        assert env.versions()["toxiproxy"].startswith("v2.")  # not "git" for a go-install build
        pids = [env.nats.pid, env.toxi.pid]
        rundir = env.rundir
        ports = [port_of(u) for u in (env.client_url, env.direct_url, env.monitor_url, env.toxiproxy_url)]
        assert rundir is not None and rundir.is_dir()
    assert all(gone(p) for p in pids)
    assert not rundir.exists()
    assert not any(port_in_use(p) for p in ports)
    env.stop()  # a second stop is harmless


def test_describe_and_repr_never_show_the_password(env: LocalEnvironment) -> None:
    pw = env.credentials.password
    assert pw not in env.describe()
    assert pw not in repr(env.credentials) and pw not in str(env.credentials)
    assert env.credentials.user in env.describe()


def test_jetstream_publish_and_consume_through_the_proxy(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        observer = await nats.connect(**env.connect_options(direct=True))
        client = await nats.connect(**env.connect_options())
        try:
            assert client.connected_url.port == port_of(env.client_url)
            await observer.jetstream().add_stream(StreamConfig(name="LIFE", subjects=["life.>"]))
            js = client.jetstream()
            acks = [await js.publish("life.x", f"m{i}".encode(), timeout=5) for i in range(3)]
            sub = await js.pull_subscribe("life.x", durable="life")
            msgs = await sub.fetch(3, timeout=5)
            assert [m.data for m in msgs] == [b"m0", b"m1", b"m2"]
            for m in msgs:
                await m.ack_sync(timeout=5)
            assert [m.metadata.sequence.stream for m in msgs] == [a.seq for a in acks]
            # the observer sees the consumer's state server-side
            ci = await observer.jetstream().consumer_info("LIFE", "life")
            assert ci.num_ack_pending == 0 and ci.delivered.stream_seq == 3
        finally:
            await client.close()
            await observer.close()

    arun(scenario())


def test_observer_connects_directly_and_bypasses_the_proxy(env: LocalEnvironment) -> None:
    async def scenario() -> None:
        env.toxiproxy.disable(env.proxy_name)
        try:
            observer = await nats.connect(**env.connect_options(direct=True), allow_reconnect=False)
            try:
                assert observer.connected_url.port == port_of(env.direct_url)
                await observer.flush(timeout=2)
                ai = await observer.jetstream().account_info()
                assert ai.limits is not None
            finally:
                await observer.close()
        finally:
            env.reset_proxy()

    arun(scenario())


@pytest.mark.parametrize("direct", [False, True], ids=["proxy", "direct"])
@pytest.mark.parametrize("creds", ["none", "wrong-password"])
def test_client_without_the_credentials_is_refused(env: LocalEnvironment, direct: bool, creds: str) -> None:
    opts = env.connect_options(direct=direct)
    if creds == "none":
        del opts["user"], opts["password"]
    else:
        opts["password"] = "not-" + opts["password"]

    async def scenario() -> None:
        errors: list[Exception] = []

        async def on_err(e: Exception) -> None:
            errors.append(e)

        with pytest.raises(Exception) as ei:
            nc = await nats.connect(**opts, allow_reconnect=False, connect_timeout=2, error_cb=on_err)
            await nc.close()
        seen = " ".join(str(e) for e in [ei.value, *errors]).lower()
        assert "authorization violation" in seen

    arun(scenario())
    assert env.server_running()  # a refused client does not hurt the server


def test_nothing_listens_beyond_loopback(env: LocalEnvironment) -> None:
    mine = {env.nats.pid, env.toxi.pid}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.pid in mine and conn.status == psutil.CONN_LISTEN:
            assert conn.laddr.ip == "127.0.0.1", conn
