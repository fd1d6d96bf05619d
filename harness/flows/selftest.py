"""Self-test flows: misbehave on purpose (and their clean twins), to prove the checks catch them.

They stand in for a buggy client: the harness must report each one with the right
check and verdict, every time, and must pass each clean twin, every time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from nats.js.api import ConsumerConfig, StreamConfig

from harness.flows import Names, flow

_LEAKED: list[asyncio.Task] = []  # keep leaked tasks referenced, as a buggy library would


async def _forever() -> None:
    await asyncio.Event().wait()


@flow("selftest.leak_task", triggers=("in_call",))
async def leak_task(ctx: Any) -> dict:
    """Start a background task and never end it."""
    await ctx.checkpoint("in_call")
    _LEAKED.append(asyncio.get_running_loop().create_task(_forever()))
    return {}


@flow("selftest.clean_task", triggers=("in_call",))
async def clean_task(ctx: Any) -> dict:
    """Start a background task and end it before returning."""
    await ctx.checkpoint("in_call")
    t = asyncio.get_running_loop().create_task(_forever())
    await asyncio.sleep(0)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    return {}


async def _prepare_stream(js: Any, names: Names, params: Any) -> None:
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"]))


async def _bound_push_consumer(ctx: Any, durable: str) -> Any:
    """A durable push consumer and a plain subscription on its deliver subject (live interest)."""
    inbox = ctx.nc.new_inbox()
    await ctx.js.add_consumer(ctx.names.stream, ConsumerConfig(durable_name=durable, deliver_subject=inbox))
    return await ctx.nc.subscribe(inbox)


@flow("selftest.leave_consumer", triggers=("in_call",), prepare=_prepare_stream)
async def leave_consumer(ctx: Any) -> dict:
    """Create a durable push consumer and keep a subscription on it (live interest) forever."""
    await ctx.checkpoint("in_call")
    _LEAKED.append(await _bound_push_consumer(ctx, "leftover"))
    return {}


@flow("selftest.clean_consumer", triggers=("in_call",), prepare=_prepare_stream)
async def clean_consumer(ctx: Any) -> dict:
    """Create the same consumer, then unsubscribe and delete it."""
    await ctx.checkpoint("in_call")
    sub = await _bound_push_consumer(ctx, "tidy")
    try:
        await ctx.nc.flush()
    finally:
        await sub.unsubscribe()
        await ctx.js.delete_consumer(ctx.names.stream, "tidy")
    return {}


async def _messages(ctx: Any, honour_finish: bool) -> AsyncIterator[int]:
    done = asyncio.Event()
    if honour_finish:
        ctx.on_finish(done.set)
    yield 1
    await (done.wait() if honour_finish else asyncio.Event().wait())  # a lost wake-up when not honoured


@flow("selftest.stuck_iterator", triggers=("blocked",))
async def stuck_iterator(ctx: Any) -> dict:
    """An iterator that does not end when the flow's terminal event comes (a lost wake-up)."""
    n = 0
    async for _ in ctx.iterate("messages", _messages(ctx, honour_finish=False)):
        n += 1
        ctx.received([str(n)])
    return {"received": n}


@flow("selftest.clean_iterator", triggers=("blocked",))
async def clean_iterator(ctx: Any) -> dict:
    """An iterator that ends when the flow's terminal event comes."""
    n = 0
    async for _ in ctx.iterate("messages", _messages(ctx, honour_finish=True)):
        n += 1
        ctx.received([str(n)])
    return {"received": n}


@flow("selftest.spin", triggers=("in_call",), defaults={"seconds": 2.0})
async def spin(ctx: Any) -> dict:
    """Hold the event loop in a busy loop (bounded): nothing else can run meanwhile."""
    await ctx.checkpoint("in_call")
    end = time.monotonic() + ctx.params["seconds"]
    while time.monotonic() < end:
        pass
    return {}


@flow("selftest.yield", triggers=("in_call",), defaults={"seconds": 2.0})
async def yield_(ctx: Any) -> dict:
    """Wait the same time as `selftest.spin`, yielding to the loop."""
    await ctx.checkpoint("in_call")
    await asyncio.sleep(ctx.params["seconds"])
    return {}


@flow("selftest.crash", triggers=("in_call",))
async def crash(ctx: Any) -> dict:
    """The client process dies abruptly (as a segfaulting extension would)."""
    import os
    import signal
    import sys

    await ctx.checkpoint("in_call")
    print("selftest.crash: about to die", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


@flow("selftest.block", triggers=("in_call",), defaults={"seconds": 2.0})
async def block(ctx: Any) -> dict:
    """Block the event loop in a synchronous sleep (a hang with idle CPU), bounded."""
    await ctx.checkpoint("in_call")
    time.sleep(ctx.params["seconds"])
    return {}


def _connect_to_server(ctx: Any) -> Any:
    """A plain TCP connection to the server the client uses (as a second transport would be)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(ctx.nc.connected_url.geturl() if ctx.nc.connected_url else "")
    return socket.create_connection((url.hostname, url.port), timeout=2)


@flow("selftest.leak_socket", triggers=("in_call",))
async def leak_socket(ctx: Any) -> dict:
    """Open a socket to the server and never close it (a transport a reconnect forgot)."""
    await ctx.checkpoint("in_call")
    _LEAKED.append(_connect_to_server(ctx))  # type: ignore[arg-type]
    return {}


@flow("selftest.clean_socket", triggers=("in_call",))
async def clean_socket(ctx: Any) -> dict:
    """Open the same socket and close it before returning."""
    await ctx.checkpoint("in_call")
    _connect_to_server(ctx).close()
    return {}


@flow("selftest.pinger_outlives_close", triggers=("in_call",))
async def pinger_outlives_close(ctx: Any) -> dict:
    """Hide the connection's pinger from close(): a task connect started that outlives close."""
    await ctx.checkpoint("in_call")
    _LEAKED.append(ctx.nc._ping_interval_task)  # close() cancels only what it still knows about
    ctx.nc._ping_interval_task = None
    return {}


@flow("selftest.hang_in_finish", triggers=("blocked",))
async def hang_in_finish(ctx: Any) -> dict:
    """The flow's terminal action (as a client's unsubscribe might) never returns."""
    ctx.on_finish(asyncio.Event().wait)
    n = 0
    async for _ in ctx.iterate("messages", _messages(ctx, honour_finish=False)):
        n += 1
        ctx.received([str(n)])
    return {"received": n}


async def _never_closed() -> None:
    return None


@flow("selftest.connection_outlives_close", triggers=("in_call",))
async def connection_outlives_close(ctx: Any) -> dict:
    """Make close() forget to close the socket: the server keeps the connection, the process its fd."""
    await ctx.checkpoint("in_call")
    transport = ctx.nc._transport
    _LEAKED.append(transport)
    transport.close = lambda: None
    transport.wait_closed = _never_closed
    return {}


def _lossy_fetch_flow(name: str, lose: str | None) -> None:
    from harness.flows.next import prepare_stream_with_durable

    async def run(ctx: Any) -> dict:
        sub = await ctx.js.pull_subscribe_bind(durable=ctx.names.consumer, stream=ctx.names.stream)
        got: list[str] = []
        try:
            while len(set(got)) < ctx.params["count"]:
                ctx.check_deadline(f"{len(set(got))} of {ctx.params['count']} messages")
                try:
                    msgs = await ctx.call("fetch", sub.fetch(5, timeout=0.5))
                except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
                    continue
                for m in msgs:
                    ctx.delivered(m)
                    await m.ack()
                    if m.data.decode() != lose:  # a buggy client acks a message the application never sees
                        got.append(m.data.decode())
        finally:
            await sub.unsubscribe()
        return {"received": len(set(got))}

    run.__doc__ = ("Fetch every message; the client loses one it acked." if lose else "Fetch every message.")
    flow(name, triggers=("in_call",), prepare=prepare_stream_with_durable, defaults={"count": 10})(run)


_lossy_fetch_flow("selftest.lose_message", lose="3")
_lossy_fetch_flow("selftest.keep_messages", lose=None)


@flow("selftest.raises", triggers=("in_call",))
async def raises(ctx: Any) -> dict:
    """Raise without any fault (as a client that fails on a healthy link would)."""
    await ctx.checkpoint("in_call")
    raise RuntimeError("boom on a healthy link")


def _delivery_flow(name: str, mode: str) -> None:
    """Fetch every message, nak the first and take its redelivery; then misreport as a buggy client would."""
    from harness.flows.next import prepare_stream_with_durable

    async def fetch(ctx: Any, sub: Any, n: int) -> list:
        while True:
            ctx.check_deadline("waiting for a delivery")
            try:
                return await ctx.call("fetch", sub.fetch(n, timeout=0.5))
            except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
                continue

    async def run(ctx: Any) -> dict:
        sub = await ctx.js.pull_subscribe_bind(durable=ctx.names.consumer, stream=ctx.names.stream)
        try:
            got: list = []
            while len(got) < ctx.params["count"]:
                got += await fetch(ctx, sub, ctx.params["count"] - len(got))
            first, rest = got[0], got[1:]
            for m in got:
                ctx.delivered(m)
            for m in rest:
                await m.ack()
            await first.nak()  # redelivered at once: delivery count 2 (an expected redelivery)
            (again,) = await fetch(ctx, sub, 1)
            ctx.delivered(again)
            if mode == "duplicate":
                ctx.delivered(again)  # the same delivery handed to the application twice
            elif mode == "decrease":
                ctx.delivered(first)  # the stale first delivery handed over after its redelivery
            await again.ack_sync()
        finally:
            await sub.unsubscribe()
        return {"received": len(got), "redelivered": 1}

    run.__doc__ = {
        "duplicate": "Take a redelivery, then hand the same delivery to the flow twice.",
        "decrease": "Take a redelivery, then hand over the stale first delivery (its count goes down).",
        "clean": "Take a redelivery once (an expected redelivery, counted apart).",
    }[mode]
    flow(name, triggers=("in_call",), prepare=prepare_stream_with_durable, defaults={"count": 5})(run)


_delivery_flow("selftest.duplicate_delivery", "duplicate")
_delivery_flow("selftest.decreasing_delivery", "decrease")
_delivery_flow("selftest.clean_redelivery", "clean")


_KEPT: list = []  # what the leaky soak flow keeps, as a client's cache that never evicts would


def _soak_round_flow(name: str, leak: bool) -> None:
    async def run(ctx: Any) -> dict:
        await ctx.call("flush", ctx.nc.flush(timeout=2))
        made = [bytearray(ctx.params["bytes"])] + [[i] for i in range(ctx.params["objects"])]  # lists: gc-tracked
        if leak:
            _KEPT.append(made)  # a little kept every round
        return {"kept": len(_KEPT)}

    run.__doc__ = ("One round that keeps a little memory (bytes and objects) for good." if leak
                   else "The same round, keeping nothing.")
    flow(name, triggers=(), defaults={"bytes": 4096, "objects": 20})(run)


_soak_round_flow("selftest.soak_leak", leak=True)
_soak_round_flow("selftest.soak_clean", leak=False)
