"""Flows for the other APIs a caller waits on (the waiting-API coverage table,
harness.coverage): KV history, purge and a watch replaying history; ObjectStore info, list,
delete and watch; a consumer's info and pause.

Each makes its API call as the *waiting call* (`ctx.waiting`: network faults stall it, the
cancel family gives up on it), then goes on with the same handle, as
harness.flows.continuation does: it writes `after` new values (a put, an object, a publish)
and reads each back through the same API (the continuation record, judged by the
delivery and iterators checks).
"""

from __future__ import annotations

import asyncio
import datetime
import os
from typing import Any, Awaitable, Callable, Mapping

from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from harness.flows import IntegrityError, Names, compat, flow
from harness.flows.continuation import CONTINUE, JS_TIMEOUT, after_ids, publish_after, take_after, timed, wait_for_waiting


def _done(ctx: Any) -> dict:
    return {"after": len(ctx.continuation.published), "after_delivered": len(ctx.continuation.got)}


# -- KV ----------------------------------------------------------------------------------

async def _prepare_kv(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    kv = await js.create_key_value(bucket=names.bucket, history=10)
    for i in range(3):
        await kv.put("k", f"v{i}".encode())


@flow("kv.history", triggers=("in_call",), prepare=_prepare_kv, defaults={**CONTINUE}, consumer_stream="kv",
      requires=("nats.js.kv.KeyValue.history",))
async def kv_history(ctx: Any) -> dict:
    """`kv.history(key)` (a temporary watcher inside), then put and read the history again."""
    kv = await ctx.js.key_value(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    value, _ = await wait_for_waiting(ctx, "kv.history", lambda: kv.history("k"))
    if value is not None and [e.value for e in value] != [b"v0", b"v1", b"v2"]:
        raise IntegrityError(f"kv.history returned {[e.value for e in value]}, not v0..v2")
    for i in after_ids(ctx):
        await timed(ctx, "kv.put", kv.put("k", i.encode()), JS_TIMEOUT)
        ctx.continuation.publish([i])
        hist = await timed(ctx, "kv.history", kv.history("k"), JS_TIMEOUT)
        ctx.continuation.received((hist[-1].value or b"").decode() if hist else "")
    return _done(ctx)


@flow("kv.purge", triggers=("in_call",), prepare=_prepare_kv, defaults={**CONTINUE}, consumer_stream="kv",
      requires=("nats.js.kv.KeyValue.purge",))
async def kv_purge(ctx: Any) -> dict:
    """`kv.purge(key)`, then put and get the key again with the same bucket handle."""
    kv = await ctx.js.key_value(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    await wait_for_waiting(ctx, "kv.purge", lambda: kv.purge("k"))
    for i in after_ids(ctx):
        await timed(ctx, "kv.put", kv.put("k", i.encode()), JS_TIMEOUT)
        ctx.continuation.publish([i])
        e = await timed(ctx, "kv.get", kv.get("k"), JS_TIMEOUT)
        ctx.continuation.received((e.value or b"").decode())
    return _done(ctx)


@flow("kv.watch_history", triggers=("blocked",), prepare=_prepare_kv, defaults={**CONTINUE}, consumer_stream="kv",
      requires=("nats.js.kv.KeyValue.watch(include_history)",))
async def kv_watch_history(ctx: Any) -> dict:
    """`kv.watch(key, include_history=True)`: the whole history replayed, a wait for an update
    (`updates()`), then the same watcher sees every value put after it; `stop()`."""
    kv = await ctx.js.key_value(ctx.names.bucket)
    watcher = await kv.watch("k", include_history=True)
    nt = ctx.params["next_timeout"]
    try:
        seen: list[str] = []
        while True:  # the history, then the end-of-initial-values marker (None)
            ctx.check_deadline(f"{len(seen)} of 3 history entries")
            e = await ctx.call("kv.watch.updates", watcher.updates(timeout=nt))
            if e is None:
                break
            seen.append((e.value or b"").decode())
        if seen != ["v0", "v1", "v2"]:
            raise IntegrityError(f"the watch replayed {seen}, not v0..v2")
        ctx.received(seen)
        await wait_for_waiting(ctx, "kv.watch.updates", lambda: watcher.updates(timeout=ctx.params["wait_timeout"]))
        for i in after_ids(ctx):
            await timed(ctx, "kv.put", kv.put("k", i.encode()), JS_TIMEOUT)
            ctx.continuation.publish([i])
        await _take_updates(ctx, watcher, lambda e: (e.value or b"").decode())
    finally:
        await watcher.stop()
    return _done(ctx)


async def _take_updates(ctx: Any, watcher: Any, ident: Any) -> None:
    """Updates from the same watcher until every value written after the waiting call is seen."""
    nt = ctx.params["next_timeout"]
    end = asyncio.get_running_loop().time() + ctx.params["after_wait"]
    while ctx.continuation.missing() and asyncio.get_running_loop().time() < end:
        try:
            e = await timed(ctx, "watch.updates", watcher.updates(timeout=nt), nt)
        except asyncio.TimeoutError:
            continue
        if e is not None:
            ctx.continuation.received(ident(e))


# -- ObjectStore ---------------------------------------------------------------------------

async def _prepare_obs(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    obs = await js.create_object_store(names.bucket)
    await obs.put("obj", os.urandom(params["size"]))


_OBS = {"size": 65_536, **CONTINUE}
_OBS_REQ = ("nats.js.JetStreamContext.object_store",)


async def _put_objects(ctx: Any, obs: Any) -> list[tuple[str, bytes]]:
    out = []
    for i in after_ids(ctx):
        data = i.encode() * 1024
        await timed(ctx, "objectstore.put", obs.put(i, data), JS_TIMEOUT)
        ctx.continuation.publish([i])
        out.append((i, data))
    return out


@flow("objectstore.info", triggers=("in_call",), prepare=_prepare_obs, defaults=_OBS, consumer_stream="object", requires=_OBS_REQ)
async def objectstore_info(ctx: Any) -> dict:
    """`obs.get_info(name)`, then put objects and read each one's info with the same handle."""
    obs = await ctx.js.object_store(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    await wait_for_waiting(ctx, "objectstore.info", lambda: obs.get_info("obj"))
    for i, data in await _put_objects(ctx, obs):
        info = await timed(ctx, "objectstore.info", obs.get_info(i), JS_TIMEOUT)
        if info.size == len(data):
            ctx.continuation.received(i)
    return _done(ctx)


@flow("objectstore.list", triggers=("in_call",), prepare=_prepare_obs, defaults=_OBS, consumer_stream="object",
      requires=("nats.js.object_store.ObjectStore.list",))
async def objectstore_list(ctx: Any) -> dict:
    """`obs.list()` (a temporary watcher inside), then put objects and list again with the same handle."""
    obs = await ctx.js.object_store(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    await wait_for_waiting(ctx, "objectstore.list", lambda: obs.list())
    await _put_objects(ctx, obs)
    listed = await timed(ctx, "objectstore.list", obs.list(), JS_TIMEOUT)
    for info in listed:
        ctx.continuation.received(info.name)
    return _done(ctx)


@flow("objectstore.delete", triggers=("in_call",), prepare=_prepare_obs, defaults=_OBS, consumer_stream="object",
      requires=("nats.js.object_store.ObjectStore.delete",))
async def objectstore_delete(ctx: Any) -> dict:
    """`obs.delete(name)`, then put objects and get each whole with the same handle."""
    obs = await ctx.js.object_store(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    await wait_for_waiting(ctx, "objectstore.delete", lambda: obs.delete("obj"))
    for i, data in await _put_objects(ctx, obs):
        res = await timed(ctx, "objectstore.get", asyncio.wait_for(obs.get(i), JS_TIMEOUT), JS_TIMEOUT)
        if res.data == data:
            ctx.continuation.received(i)
    return _done(ctx)


@flow("objectstore.watch", triggers=("blocked",), prepare=_prepare_obs, defaults=_OBS, consumer_stream="object",
      requires=("nats.js.object_store.ObjectStore.watch",))
async def objectstore_watch(ctx: Any) -> dict:
    """`obs.watch()`: the current objects, a wait for an update (`updates()`), then the same
    watcher sees every object put after it; `stop()` ends it."""
    obs = await ctx.js.object_store(ctx.names.bucket)
    watcher = await obs.watch()
    nt = ctx.params["next_timeout"]
    try:
        seen: list[str] = []
        while True:
            ctx.check_deadline(f"{len(seen)} current objects")
            info = await ctx.call("objectstore.watch.updates", watcher.updates(timeout=nt))
            if info is None:
                break
            seen.append(info.name)
        ctx.received(seen)
        await wait_for_waiting(ctx, "objectstore.watch.updates", lambda: watcher.updates(timeout=ctx.params["wait_timeout"]))
        await _put_objects(ctx, obs)
        await _take_updates(ctx, watcher, lambda info: info.name)
    finally:
        await watcher.stop()
    return _done(ctx)


# -- a consumer ------------------------------------------------------------------------------

async def _prepare_durable(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"]))
    await js.add_consumer(names.stream, ConsumerConfig(durable_name=names.consumer, ack_policy=AckPolicy.EXPLICIT))


async def _fetch_after(ctx: Any, idle: Callable[[], Awaitable[None]] | None = None) -> None:
    sub = await compat.pull_bind(ctx.js, durable=ctx.names.consumer, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
    try:
        await publish_after(ctx)
        nt = ctx.params["next_timeout"]
        await take_after(ctx, "fetch", lambda: sub.fetch(5, timeout=nt), nt, idle=idle)
    finally:
        await sub.unsubscribe()


@flow("consumer.info", triggers=("in_call",), prepare=_prepare_durable, defaults={**CONTINUE},
      requires=("nats.js.manager.JetStreamManager.consumer_info",))
async def consumer_info(ctx: Any) -> dict:
    """`js.consumer_info(stream, durable)`, then the same consumer delivers every message published after it."""
    await ctx.checkpoint("in_call")
    await wait_for_waiting(ctx, "consumer.info", lambda: ctx.js.consumer_info(ctx.names.stream, ctx.names.consumer))
    await _fetch_after(ctx)
    return _done(ctx)


@flow("consumer.pause", triggers=("in_call",), prepare=_prepare_durable, defaults={**CONTINUE},
      requires=("nats.js.manager.JetStreamManager.pause_consumer", "nats.js.manager.JetStreamManager.resume_consumer"))
async def consumer_pause(ctx: Any) -> dict:
    """`js.pause_consumer(...)` for a minute, `resume_consumer`, then the same consumer delivers
    every message published after it."""
    await ctx.checkpoint("in_call")
    until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)).isoformat()
    await wait_for_waiting(ctx, "consumer.pause", lambda: ctx.js.pause_consumer(ctx.names.stream, ctx.names.consumer, until))
    await timed(ctx, "consumer.resume", ctx.js.resume_consumer(ctx.names.stream, ctx.names.consumer), JS_TIMEOUT)
    late = 0

    async def resume_if_paused() -> None:
        # A pause the caller gave up on still reaches the server, and JetStream answers API
        # requests concurrently: sent before the resume, it can be applied after it (measured
        # with none of the harness: 1-2 of 200 pause+resume pairs on one connection, the
        # resume answered first). A careful user who wants the consumer running checks.
        nonlocal late
        info = await timed(ctx, "consumer.info", ctx.js.consumer_info(ctx.names.stream, ctx.names.consumer), JS_TIMEOUT)
        if info.paused:
            late += 1
            await timed(ctx, "consumer.resume", ctx.js.resume_consumer(ctx.names.stream, ctx.names.consumer), JS_TIMEOUT)

    await _fetch_after(ctx, idle=resume_if_paused)
    return {**_done(ctx), "late_pauses": late}



