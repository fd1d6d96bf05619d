"""Continue flows: a waiting call, then the SAME objects used again (the cancel family's flows).

Each flow does its ordinary work, then makes one *waiting call* (`ctx.waiting`: a long
`next_msg`, a parked pull `fetch`, an `__anext__` with nothing to deliver, a KV get or an
ObjectStore read under a stall, a publish awaiting its ack, an `ack_sync`) — where the cancel
family (harness.faults.cancel) gives up on it — and then goes on with the same subscription,
iterator, consumer, bucket or connection: it publishes `after` new messages and takes them
with the same objects, each next call bounded by its own timeout.

The agent records how the waiting call ended and what the continuation got
(`ctx.continuation`): the `delivery` check reports a message published after the cancel
that never reached the continuing caller, the `iterators` check a next call that took longer
than its own timeout. Without a fault the waiting call ends by its own timeout (or, for an
iterator, stays in flight and takes the first message published after it): the control runs
the same continuation.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Awaitable, Callable, Mapping

from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from harness.flows import PENDING, CallCancelled, IntegrityError, Names, compat, flow
from harness.flows.next import prepare_stream_with_durable

# What every continue flow reads: messages published after the waiting call, how long the
# continuation keeps taking them, each next call's own timeout, the waiting call's own.
CONTINUE = {"after": 3, "after_wait": 4.0, "next_timeout": 1.0, "wait_timeout": 2.0}
JS_TIMEOUT = 5.0  # nats-py's JetStream context's own timeout (js.publish, kv.get, ...)


async def wait_for_waiting(ctx: Any, label: str, make: Callable[[], Awaitable[Any]], within: float | None = None,
                           on_value: Callable[[Any], Awaitable[None]] | None = None) -> Any:
    """The waiting call, made again while the cancel family has more cancels to make
    (`cancel.repeat`, `cancel.race`: a value that arrives meanwhile goes to `on_value`).
    Returns its value, `PENDING` (still in flight after `within`, with the `Waiting` as second
    item), or None once it ended by a cancellation or its own timeout."""
    while True:
        w = ctx.waiting(label, make())
        try:
            value = await w.result(within)
        except CallCancelled:
            if ctx.cancels_left > 0:
                continue
            return None, None
        except asyncio.TimeoutError:  # its own timeout: nothing came
            return None, None
        if on_value is not None and value is not PENDING and ctx.cancels_left > 0:
            await on_value(value)
            continue
        return value, w


async def timed(ctx: Any, label: str, aw: Awaitable[Any], timeout: float) -> Any:
    """A next call with the same objects, tracked as pending; its time against its own `timeout`."""
    t = time.monotonic()
    try:
        return await ctx.call(label, aw)
    finally:
        ctx.continuation.call(label, time.monotonic() - t, timeout)


def after_ids(ctx: Any) -> list[str]:
    return [f"after-{i}" for i in range(ctx.params["after"])]


async def publish_after(ctx: Any) -> list[str]:
    """Publish `after` new messages on the flow's subject (same connection), awaiting each ack."""
    ids = after_ids(ctx)
    for i in ids:
        await timed(ctx, "js.publish", ctx.js.publish(f"{ctx.names.subject}.m", i.encode()), JS_TIMEOUT)
    ctx.continuation.publish(ids)
    return ids


async def take_after(ctx: Any, label: str, take: Callable[[], Awaitable[list[Any]]], timeout: float,
                     first: list[Any] = (), idle: Callable[[], Awaitable[None]] | None = None) -> None:
    """Take messages with the same objects until every one published after the waiting call
    is in, or `after_wait` passes (what is missing then is the delivery check's finding);
    `idle` runs after a take that got nothing (outside the take's own time)."""
    end = time.monotonic() + ctx.params["after_wait"]
    msgs = list(first)
    while True:
        for m in msgs:
            ctx.delivered(m)
            await m.ack()
            ctx.continuation.received(m.data.decode())
        if not ctx.continuation.missing() or time.monotonic() >= end:
            return
        try:
            msgs = await timed(ctx, label, take(), timeout)
        except asyncio.TimeoutError:
            msgs = []
            if idle is not None:
                await idle()


async def _initial(ctx: Any, take: Callable[[], Awaitable[list[Any]]]) -> list[str]:
    got: list[str] = []
    while len(set(got)) < ctx.params["count"]:
        ctx.check_deadline(f"{len(set(got))} of {ctx.params['count']} messages")
        try:
            msgs = await take()
        except asyncio.TimeoutError:
            continue
        for m in msgs:
            ctx.delivered(m)
            await m.ack()
            got.append(m.data.decode())
    ctx.received(got)
    return got


async def prepare_push_durable(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    """A stream, a durable push consumer (the observer's: no ephemeral left to be reaped), `count` messages."""
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"]))
    await js.add_consumer(names.stream, ConsumerConfig(durable_name=names.consumer, deliver_subject=f"deliver.{names.tag}",
                                                       ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0))
    for i in range(params["count"]):
        await js.publish(f"{names.subject}.m", str(i).encode())


async def _push(ctx: Any) -> Any:
    return await ctx.js.subscribe(f"{ctx.names.subject}.>", durable=ctx.names.consumer, stream=ctx.names.stream, manual_ack=True)


def _result(got: list[str], ctx: Any) -> dict:
    c = ctx.continuation
    return {"received": len(set(got)), "after": len(c.published), "after_delivered": len(c.got)}


@flow("continue.next_msg", triggers=("blocked",), prepare=prepare_push_durable, defaults={"count": 5, **CONTINUE})
async def next_msg(ctx: Any) -> dict:
    """`sub.next_msg()` until every message is in, one that waits, then the same subscription again."""
    sub = await _push(ctx)
    ctx.track(sub)
    nt = ctx.params["next_timeout"]
    try:
        got = await _initial(ctx, lambda: _one(ctx.call("next_msg", sub.next_msg(timeout=nt))))
        value, _ = await wait_for_waiting(ctx, "next_msg", lambda: sub.next_msg(timeout=ctx.params["wait_timeout"]),
                                          on_value=lambda m: _take(ctx, m))
        if value is not None:
            await _take(ctx, value)
        await publish_after(ctx)
        await take_after(ctx, "next_msg", lambda: _one(sub.next_msg(timeout=nt)), nt)
    finally:
        await sub.unsubscribe()
    return _result(got, ctx)


async def _take(ctx: Any, *msgs: Any) -> None:
    """Messages the waiting call returned (a message on its way as the caller gave up)."""
    for m in msgs:
        ctx.delivered(m)
        await m.ack()
        ctx.continuation.received(m.data.decode())


async def _one(aw: Awaitable[Any]) -> list[Any]:
    return [await aw]


@flow("continue.fetch", triggers=("waiting",), prepare=prepare_stream_with_durable, defaults={"count": 5, "batch": 5, **CONTINUE})
async def fetch(ctx: Any) -> dict:
    """Pull-fetch every message, a long-poll fetch that waits, then the same pull subscription again."""
    sub = await compat.pull_bind(ctx.js, durable=ctx.names.consumer, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
    ctx.track(sub)
    nt, b = ctx.params["next_timeout"], ctx.params["batch"]
    try:
        got = await _initial(ctx, lambda: ctx.call("fetch", sub.fetch(b, timeout=nt)))
        value, _ = await wait_for_waiting(ctx, "fetch", lambda: sub.fetch(1, timeout=ctx.params["wait_timeout"]),
                                          on_value=lambda ms: _take(ctx, *ms))
        if value is not None:
            await _take(ctx, *value)
        await publish_after(ctx)
        await take_after(ctx, "fetch", lambda: sub.fetch(b, timeout=nt), nt)
    finally:
        await sub.unsubscribe()
    return _result(got, ctx)


@flow("continue.iterate", triggers=("blocked",), prepare=prepare_push_durable, defaults={"count": 5, **CONTINUE})
async def iterate(ctx: Any) -> dict:
    """`async for` over `sub.messages`, an `__anext__` with nothing to deliver, then the same iterator again."""
    sub = await _push(ctx)
    ctx.track(sub)
    it = sub.messages
    label = "sub.messages.__anext__"
    try:
        got = await _initial(ctx, lambda: _one(ctx.call(label, it.__anext__())))
        # Nothing to deliver: the caller gives up on this one (a fault), or it stays in flight
        # and takes the first message published after it (the control).
        value, w = await wait_for_waiting(ctx, label, it.__anext__, within=ctx.params["wait_timeout"],
                                          on_value=lambda m: _take(ctx, m))
        await publish_after(ctx)
        if value is PENDING:  # the call still in flight takes the first of them
            first = [await timed(ctx, label, w.result(), ctx.params["next_timeout"])]
        else:
            first = [value] if value is not None else []
        nt = ctx.params["next_timeout"]
        await take_after(ctx, label, lambda: _one(asyncio.wait_for(it.__anext__(), nt)), nt, first=first)
    finally:
        await sub.unsubscribe()
    return _result(got, ctx)


async def _prepare_kv(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    kv = await js.create_key_value(bucket=names.bucket)
    await kv.put("k", b"before")


@flow("continue.kv_get", triggers=("in_call",), prepare=_prepare_kv, defaults={**CONTINUE}, consumer_stream="kv")
async def kv_get(ctx: Any) -> dict:
    """A KV get that waits (under a stall), then a put and a get of the new value with the same bucket."""
    kv = await ctx.js.key_value(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    await wait_for_waiting(ctx, "kv.get", lambda: kv.get("k"))
    for i in after_ids(ctx):
        await timed(ctx, "kv.put", kv.put("k", i.encode()), JS_TIMEOUT)
        ctx.continuation.publish([i])
        e = await timed(ctx, "kv.get", kv.get("k"), JS_TIMEOUT)
        ctx.continuation.received((e.value or b"").decode())
    return {"after": len(ctx.continuation.published), "after_delivered": len(ctx.continuation.got)}


async def _prepare_object(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    obs = await js.create_object_store(names.bucket)
    await obs.put("obj", os.urandom(params["size"]))


@flow("continue.objectstore_get", triggers=("transfer", "in_call"), prepare=_prepare_object,
      defaults={"size": 262_144, "get_timeout": 10.0, **CONTINUE}, consumer_stream="object",
      requires=("nats.js.JetStreamContext.object_store",))
async def objectstore_get(ctx: Any) -> dict:
    """An ObjectStore get given up mid-transfer, then the same bucket: put new objects, get each whole."""
    obs = await ctx.js.object_store(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    value, _ = await wait_for_waiting(ctx, "objectstore.get", lambda: obs.get("obj"))
    if value is not None and len(value.data) != ctx.params["size"]:
        raise IntegrityError(f"object truncated: got {len(value.data)} of {ctx.params['size']} bytes, no error raised")
    gt = ctx.params["get_timeout"]  # nats-py's get has no timeout of its own: the caller's
    for i in after_ids(ctx):
        data = i.encode() * 4096
        await timed(ctx, "objectstore.put", obs.put(i, data), JS_TIMEOUT)
        ctx.continuation.publish([i])
        res = await timed(ctx, "objectstore.get", asyncio.wait_for(obs.get(i), gt), gt)
        if res.data == data:
            ctx.continuation.received(i)
        elif res.data:
            raise IntegrityError(f"object {i}: got {len(res.data)} of {len(data)} bytes, no error raised")
    return {"after": len(ctx.continuation.published), "after_delivered": len(ctx.continuation.got)}


async def _prepare_publish(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"]))
    await js.add_consumer(names.stream, ConsumerConfig(durable_name=names.consumer, ack_policy=AckPolicy.EXPLICIT))


@flow("continue.publish", triggers=("in_call",), prepare=_prepare_publish, defaults={**CONTINUE}, consumer_stream="stream")
async def publish(ctx: Any) -> dict:
    """A `js.publish` awaiting its ack (under a stall), given up; then the same connection
    publishes again and a pull consumer receives every message published after it."""
    sub = await compat.pull_bind(ctx.js, durable=ctx.names.consumer, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
    nt = ctx.params["next_timeout"]
    try:
        await ctx.checkpoint("in_call")
        await wait_for_waiting(ctx, "js.publish", lambda: ctx.js.publish(f"{ctx.names.subject}.m", b"given-up"))
        await publish_after(ctx)
        await take_after(ctx, "fetch", lambda: sub.fetch(5, timeout=nt), nt)
    finally:
        await sub.unsubscribe()
    return {"after": len(ctx.continuation.published), "after_delivered": len(ctx.continuation.got)}


@flow("continue.ack_sync", triggers=("before_ack",), prepare=prepare_stream_with_durable,
      defaults={"count": 2, **CONTINUE})
async def ack_sync(ctx: Any) -> dict:
    """An `ack_sync` awaiting the server's confirmation (under a stall), given up; then the same
    pull subscription takes and acks every message published after it."""
    sub = await compat.pull_bind(ctx.js, durable=ctx.names.consumer, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
    ctx.track(sub)
    nt = ctx.params["next_timeout"]
    try:
        msgs: list[Any] = []
        while not msgs:
            ctx.check_deadline("no message to ack yet")
            try:
                msgs = await ctx.call("fetch", sub.fetch(1, timeout=nt))
            except asyncio.TimeoutError:
                pass
        m = msgs[0]
        ctx.delivered(m)
        await ctx.checkpoint("before_ack")
        await wait_for_waiting(ctx, "ack_sync", m.ack_sync)
        await publish_after(ctx)
        await take_after(ctx, "fetch", lambda: sub.fetch(5, timeout=nt), nt)
    finally:
        await sub.unsubscribe()
    return {"after": len(ctx.continuation.published), "after_delivered": len(ctx.continuation.got)}
