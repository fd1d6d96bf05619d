"""Soak flows: one round of a long-running use, repeated by the runner (`rounds:` in a
scenario file, `--soak SECONDS`) on one connection, with memory sampled after each round.

Each round leaves the stream as the next round needs it, so every round does the same work:
what grows from round to round is what the client keeps.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Mapping

from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from harness.flows import IntegrityError, Names, compat, flow, one_api


async def _prepare_nak_stream(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    """An empty stream and a durable pull consumer that never runs out of ack-pending room."""
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"]))
    await js.add_consumer(names.stream, ConsumerConfig(
        durable_name=names.consumer, ack_policy=AckPolicy.EXPLICIT, ack_wait=600.0, max_ack_pending=1_000_000))


@flow(
    "soak.nak_delay",
    triggers=(),
    prepare=_prepare_nak_stream,
    defaults={"count": 20, "nak_delay": 600.0, "fetch_timeout": 1.0, "api": ""},
    requires=("nats.aio.msg.Msg.nak(delay)",),
)
async def nak_delay(ctx: Any) -> dict:
    """Publish `count` messages, fetch them, `nak(delay)` each with a long delay (they stay pending on the server)."""
    one_api(ctx)
    subject = f"{ctx.names.subject}.m"
    for i in range(ctx.params["count"]):
        await ctx.js.publish(subject, f"m{i}".encode())
    sub = await compat.pull_bind(ctx.js, durable=ctx.names.consumer, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
    got = 0
    try:
        while got < ctx.params["count"]:
            ctx.check_deadline(f"{got} of {ctx.params['count']} messages")
            try:
                msgs = await ctx.call("fetch", sub.fetch(ctx.params["count"] - got, timeout=ctx.params["fetch_timeout"]))
            except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
                continue
            for m in msgs:
                ctx.delivered(m)
                await ctx.call("nak", m.nak(delay=ctx.params["nak_delay"]))
                got += 1
        await ctx.call("flush", ctx.nc.flush(timeout=2))  # the naks reach the server
    finally:
        await sub.unsubscribe()
    return {"naked": got}


async def _prepare_object(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    obs = await js.create_object_store(names.bucket)
    await obs.put("obj", os.urandom(params["size"]))


@flow(
    "soak.objectstore_get",
    triggers=(),
    prepare=_prepare_object,
    defaults={"size": 65_536, "call_timeout": 10.0, "api": ""},
    consumer_stream="object",
    requires=("nats.js.JetStreamContext.object_store",),
)
async def objectstore_get(ctx: Any) -> dict:
    """Get the same object again (each get runs an ordered consumer of its own)."""
    one_api(ctx)
    obs = await ctx.js.object_store(ctx.names.bucket)
    res = await ctx.call("objectstore.get", obs.get("obj"), timeout=ctx.params["call_timeout"])
    if len(res.data) != ctx.params["size"]:
        raise IntegrityError(f"object truncated: got {len(res.data)} of {ctx.params['size']} bytes, no error raised")
    return {"bytes": len(res.data)}


async def _prepare_stream(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"]))
    for i in range(params["count"]):
        await js.publish(f"{names.subject}.m", str(i).encode())


@flow(
    "soak.subscribe_cycle",
    triggers=(),
    prepare=_prepare_stream,
    defaults={"count": 10, "next_timeout": 2.0, "api": ""},
)
async def subscribe_cycle(ctx: Any) -> dict:
    """Subscribe (an ephemeral push consumer), iterate every message, ack, unsubscribe."""
    one_api(ctx)
    sub = await ctx.js.subscribe(f"{ctx.names.subject}.>", manual_ack=True)
    got = 0
    try:
        async for msg in ctx.iterate("sub.messages", sub.messages):
            ctx.delivered(msg)
            await msg.ack()
            got += 1
            if got == ctx.params["count"]:
                break
    finally:
        await sub.unsubscribe()
    return {"received": got}


@flow(
    "soak.consume_drain",
    triggers=(),
    prepare=_prepare_stream,
    defaults={"count": 10, "call_timeout": 10.0},
)
async def consume_drain(ctx: Any) -> dict:
    """Messages handed to a callback (acked there) until every one is in, then the subscription drained
    (nats-py: a push subscription's `cb` and `sub.drain()`; nats.go: `Consumer.Consume` and `Drain()`)."""
    got = 0
    everything = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        nonlocal got
        ctx.delivered(msg)
        await msg.ack()
        got += 1
        if got == ctx.params["count"]:
            everything.set()

    sub = await ctx.js.subscribe(f"{ctx.names.subject}.>", cb=on_msg, manual_ack=True)
    try:
        await ctx.call("consume", everything.wait(), timeout=ctx.params["call_timeout"])
    finally:
        await ctx.call("sub.drain", sub.drain(), timeout=ctx.params["call_timeout"])
    return {"received": got}


async def _prepare_empty(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"]))
    await js.add_consumer(names.stream, ConsumerConfig(durable_name=names.consumer, ack_policy=AckPolicy.EXPLICIT))


@flow(
    "soak.fetch_empty",
    triggers=(),
    prepare=_prepare_empty,
    defaults={"fetches": 5, "fetch_timeout": 0.1},
)
async def fetch_empty(ctx: Any) -> dict:
    """Fetch with a short timeout from an empty stream, `fetches` times (each one times out)."""
    sub = await compat.pull_bind(ctx.js, durable=ctx.names.consumer, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
    timeouts = 0
    try:
        for _ in range(ctx.params["fetches"]):
            try:
                msgs = await ctx.call("fetch", sub.fetch(1, timeout=ctx.params["fetch_timeout"]))
                raise IntegrityError(f"fetch from an empty stream returned {len(msgs)} message(s)")
            except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
                timeouts += 1
    finally:
        await sub.unsubscribe()
    return {"timeouts": timeouts}
