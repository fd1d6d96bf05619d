"""Next flows: pull fetch, `async for` over a subscription, next_msg."""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from harness.flows import Names, compat, flow, one_api


def tally(got: list[str]) -> dict:
    """A flow's outcome: distinct message ids received, and how many arrived again.

    Per-delivery accounting (stream sequence, delivery count) is `ctx.delivered(msg)`,
    which every Next/ack flow calls for each message it is handed (the `delivery` check).
    """
    return {"received": len(set(got)), "redelivered": len(got) - len(set(got))}


async def prepare_stream_with_durable(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    """A stream, a durable pull consumer (the observer's, not the client's), `count` messages.

    The messages are published while the consumer is created: it delivers from the stream's
    first message either way. On a cluster (`js.overlaps_creates`: harness.observer.Replicated)
    the stream's create is sent with them: each R3 group's leader election takes ~70 ms, and
    the consumer's create and the publishes are sent again (bounded) until the stream exists,
    so the durable's election overlaps the stream's. On one server, the stream first."""
    steps = [
        js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"])),
        js.add_consumer(names.stream, ConsumerConfig(durable_name=names.consumer, ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0)),
        _publish(js, names, params["count"]),
    ]
    if not getattr(js, "overlaps_creates", False):
        try:
            await steps.pop(0)
        except BaseException:
            for c in steps:
                c.close()  # never started
            raise
    results = await asyncio.gather(*steps, return_exceptions=True)  # all end before an error is raised
    for r in results:
        if isinstance(r, BaseException):
            raise r


async def _publish(js: Any, names: Names, count: int) -> None:
    for i in range(count):  # one after another: the stream's sequence is the messages' order
        await js.publish(f"{names.subject}.m", str(i).encode())


async def prepare_stream(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    """A stream with `count` messages; the client creates its own consumer."""
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"]))
    await _publish(js, names, params["count"])


@flow(
    "next.fetch",
    triggers=("waiting",),
    prepare=prepare_stream_with_durable,
    defaults={"count": 10, "batch": 5, "fetch_timeout": 2.0, "wait_timeout": 6.0, "api": ""},
)
async def fetch(ctx: Any) -> dict:
    """Pull-fetch every message, acking each, then a long-poll fetch that waits for more."""
    one_api(ctx)
    sub = await compat.pull_bind(ctx.js, durable=ctx.names.consumer, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
    ctx.track(sub)
    got: list[str] = []
    try:
        while len(set(got)) < ctx.params["count"]:  # distinct ids: a redelivery fills no gap
            ctx.check_deadline(f"{len(set(got))} of {ctx.params['count']} messages")
            try:
                msgs = await ctx.call("fetch", sub.fetch(ctx.params["batch"], timeout=ctx.params["fetch_timeout"]))
            except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
                continue
            for m in msgs:
                ctx.delivered(m)
                await m.ack()
                got.append(m.data.decode())
        ctx.received(got)
        # The stream is empty now: this long poll parks a pull request on the server (the
        # `waiting` trigger). It ends by its own timeout, or sooner when the subscription ends.
        try:
            await ctx.call("fetch", sub.fetch(1, timeout=ctx.params["wait_timeout"]))
        except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
            pass
    finally:
        await sub.unsubscribe()
    return tally(got)


@flow(
    "next.iterate",
    triggers=("blocked",),
    prepare=prepare_stream,
    defaults={"count": 10, "idle_heartbeat": 0.0, "ordered": False, "api": ""},
)
async def iterate(ctx: Any) -> dict:
    """`async for msg in sub.messages` on a push subscription, ended by unsubscribe (or a drain fault)."""
    one_api(ctx)
    return await _iterate(ctx, ctx.params["ordered"])


@flow(
    "next.ordered",
    triggers=("blocked",),
    prepare=prepare_stream,
    defaults={"count": 10, "idle_heartbeat": 0.0},
    requires=("nats.js.JetStreamContext.subscribe(ordered_consumer)",),
)
async def ordered(ctx: Any) -> dict:
    """`async for msg in sub.messages` on an ordered push consumer (`ordered_consumer=True`), ended by unsubscribe."""
    return await _iterate(ctx, True)


async def _iterate(ctx: Any, ordered: bool) -> dict:
    hb = ctx.params["idle_heartbeat"] or None
    if hb:
        compat.require_param(ctx.js.subscribe, "idle_heartbeat", "idle heartbeats on push subscriptions")
    if ordered:
        compat.require_param(ctx.js.subscribe, "ordered_consumer", "ordered consumers")
        sub = await ctx.js.subscribe(f"{ctx.names.subject}.>", ordered_consumer=True, idle_heartbeat=hb)
    else:
        sub = await ctx.js.subscribe(f"{ctx.names.subject}.>", manual_ack=True, idle_heartbeat=hb, flow_control=bool(hb))
    ctx.track(sub)
    ctx.on_finish(sub.unsubscribe)  # the flow's own terminal event, once the runner says so
    got: list[str] = []
    try:
        async for msg in ctx.iterate("sub.messages", sub.messages):
            ctx.delivered(msg)
            if not ordered:
                await msg.ack()
            fresh = msg.data.decode() not in got
            got.append(msg.data.decode())
            if fresh and len(set(got)) == ctx.params["count"]:
                ctx.received(got)
    finally:
        if not compat.sub_closed(sub):
            await sub.unsubscribe()
    return tally(got)


@flow(
    "next.consume",
    triggers=("blocked",),
    prepare=prepare_stream,
    defaults={"count": 10},
)
async def consume(ctx: Any) -> dict:
    """Messages handed to a callback until the subscription ends (nats-py: a push subscription's
    `cb`; nats.go: `Consumer.Consume`), ended by the flow's own stop or a drain fault."""
    got: list[str] = []

    async def on_msg(msg: Any) -> None:
        ctx.delivered(msg)
        await msg.ack()
        fresh = msg.data.decode() not in got
        got.append(msg.data.decode())
        if fresh and len(set(got)) == ctx.params["count"]:
            ctx.received(got)

    sub = await ctx.js.subscribe(f"{ctx.names.subject}.>", cb=on_msg, manual_ack=True)
    ctx.track(sub)
    ctx.on_finish(sub.unsubscribe)

    async def ended() -> None:
        # nats-py signals no end of a callback subscription: watch it (and the connection, whose
        # close or drain ends it too), up to the flow's deadline.
        while not compat.sub_closed(sub) and not ctx.nc.is_closed:
            ctx.check_deadline(f"the subscription still open, {len(set(got))} of {ctx.params['count']} messages")
            await asyncio.sleep(0.05)

    try:
        await ctx.call("consume", ended())
    finally:
        if not compat.sub_closed(sub):
            await sub.unsubscribe()
    return tally(got)


@flow(
    "next.next_msg",
    triggers=("blocked",),
    prepare=prepare_stream,
    defaults={"count": 10, "next_timeout": 2.0, "wait_timeout": 6.0},
)
async def next_msg(ctx: Any) -> dict:
    """`sub.next_msg(timeout)` in a loop until every message is in, then one that waits."""
    sub = await ctx.js.subscribe(f"{ctx.names.subject}.>", manual_ack=True)
    ctx.track(sub)
    got: list[str] = []
    try:
        while len(set(got)) < ctx.params["count"]:  # distinct ids: a redelivery fills no gap
            ctx.check_deadline(f"{len(set(got))} of {ctx.params['count']} messages")
            try:
                msg = await ctx.call("next_msg", sub.next_msg(timeout=ctx.params["next_timeout"]))
            except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
                continue
            ctx.delivered(msg)
            await msg.ack()
            got.append(msg.data.decode())
        ctx.received(got)
        # A long wait for one more: ends by its timeout, or sooner when the subscription ends.
        try:
            await ctx.call("next_msg", sub.next_msg(timeout=ctx.params["wait_timeout"]))
        except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
            pass
    finally:
        if not compat.sub_closed(sub):
            await sub.unsubscribe()
    return tally(got)
