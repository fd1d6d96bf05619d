"""Publish flows: a bulk core publisher, a JetStream publisher awaiting its acks, and an
ObjectStore put of a multi-chunk object."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any, Mapping

import nats.errors
from nats.js.api import StreamConfig

from harness.flows import IntegrityError, Names, flow


@flow("publish.core", triggers=("in_call",), defaults={"count": 3000, "size": 4096, "flush_timeout": 10.0})
async def publish_core(ctx: Any) -> dict:
    """Publish `count` core messages of `size` bytes as fast as the client takes them, then flush.

    Nobody subscribes: what is measured is the client's outbound path. `nc.publish()` blocks
    once the client's pending buffer is full (no bound by default: `flush_timeout` is None);
    that is a documented option, not a finding. With an upstream stall it fills in a moment.
    """
    payload = os.urandom(ctx.params["size"])
    await ctx.checkpoint("in_call")
    sent = 0
    for _ in range(ctx.params["count"]):
        ctx.check_deadline(f"{sent} of {ctx.params['count']} published")
        await ctx.call("publish", ctx.nc.publish(f"{ctx.names.subject}.bulk", payload))
        sent += 1
    await ctx.call("flush", ctx.nc.flush(timeout=ctx.params["flush_timeout"]))
    return {"published": sent}


async def _prepare_js_stream(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    # Deduplication by Nats-Msg-Id, so a retried publish stores its message once.
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"], duplicate_window=60.0))


@flow(
    "publish.js",
    triggers=("in_call",),
    prepare=_prepare_js_stream,
    defaults={"count": 100, "size": 256, "ack_timeout": 1.0},
)
async def publish_js(ctx: Any) -> dict:
    """`js.publish()` `count` messages awaiting each ack, retrying (same message id) until acked.

    A publish whose ack does not come is retried until the flow's deadline, as a careful
    producer does; then the stream must hold exactly `count` messages (the server
    deduplicates retries by message id).
    """
    payload = os.urandom(ctx.params["size"])
    await ctx.checkpoint("in_call")
    retries = 0
    for i in range(ctx.params["count"]):
        while True:
            ctx.check_deadline(f"{i} of {ctx.params['count']} acknowledged")
            try:
                await ctx.call("js.publish", ctx.js.publish(f"{ctx.names.subject}.m", payload,
                                                            timeout=ctx.params["ack_timeout"], headers={"Nats-Msg-Id": str(i)}))
                break
            except (asyncio.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionReconnectingError):
                retries += 1
                await asyncio.sleep(0.1)
    info = await ctx.call("stream_info", ctx.js.stream_info(ctx.names.stream), timeout=5.0)
    if info.state.messages != ctx.params["count"]:
        raise IntegrityError(f"the stream holds {info.state.messages} messages after {ctx.params['count']} acknowledged publishes")
    return {"published": ctx.params["count"], "retries": retries}


async def _prepare_bucket(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    await js.create_object_store(names.bucket)


@flow(
    "objectstore.put",
    triggers=("in_call",),
    prepare=_prepare_bucket,
    defaults={"size": 1_048_576, "call_timeout": 10.0, "settle": 8.0},
    consumer_stream="object",
    requires=("nats.js.JetStreamContext.object_store",),
)
async def objectstore_put(ctx: Any) -> dict:
    """Put a multi-chunk object: read back whole if the put succeeded, no chunks left if it failed.

    After a failure the flow waits (up to `settle` seconds, for a reconnect) until it can look at
    the bucket through its own connection, as an application checking its work would.
    """
    obs = await ctx.js.object_store(ctx.names.bucket)
    data = os.urandom(ctx.params["size"])
    await ctx.checkpoint("in_call")
    try:
        info = await ctx.call("objectstore.put", obs.put("obj", data), timeout=ctx.params["call_timeout"])
    except (asyncio.TimeoutError, nats.errors.Error) as e:
        failed = f"{type(e).__name__}: {e}"
    else:
        failed = ""
    if failed and ctx.nc.is_closed:
        # The fault closed the connection: the flow has no way left to look (not verified).
        return {"put": "failed", "error": failed, "left": "not checked: the connection is closed"}
    if failed:
        left = await _bucket_messages(ctx)
        # Nothing of a failed put may stay: no chunks, no meta (the bucket was empty before).
        if left:
            raise IntegrityError(f"the put failed ({failed}) and left {left} message(s) in the bucket's stream")
        return {"put": "failed", "error": failed}
    res = await ctx.call("objectstore.get", obs.get("obj"), timeout=ctx.params["call_timeout"])
    if hashlib.sha256(res.data).digest() != hashlib.sha256(data).digest():
        raise IntegrityError(f"the put reported success but the object reads back as {len(res.data)} of {len(data)} bytes "
                             f"(or different bytes); put info: {info.size} bytes, {info.chunks} chunks")
    return {"put": "ok", "chunks": info.chunks}


async def _bucket_messages(ctx: Any) -> int:
    """Messages in the bucket's stream, asked through the flow's own connection once it answers."""
    loop = asyncio.get_running_loop()
    end = loop.time() + ctx.params["settle"]
    last: Exception | None = None
    while loop.time() < end:
        try:
            si = await ctx.call("stream_info", ctx.js.stream_info(f"OBJ_{ctx.names.bucket}"), timeout=1.0)
            return si.state.messages
        except (asyncio.TimeoutError, nats.errors.Error) as e:
            last = e
            await asyncio.sleep(0.2)
    raise TimeoutError(f"the bucket's stream info did not answer within {ctx.params['settle']}s ({last!r})")
