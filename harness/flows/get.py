"""Get flows: ObjectStore get, KV get, stream get_msg (direct and API)."""

from __future__ import annotations

import os
from typing import Any, Mapping

from nats.js.api import StreamConfig

from harness.flows import IntegrityError, Names, compat, flow, one_api


async def _prepare_object(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    obs = await js.create_object_store(names.bucket)
    await obs.put("obj", os.urandom(params["size"]))


@flow(
    "objectstore.get",
    triggers=("in_call", "transfer", "consumer_created"),
    prepare=_prepare_object,
    defaults={"size": 1_048_576, "call_timeout": 10.0, "api": ""},
    consumer_stream="object",
    requires=("nats.js.JetStreamContext.object_store",),
)
async def objectstore_get(ctx: Any) -> dict:
    """Get a multi-chunk object from an ObjectStore bucket (call_timeout 0: no deadline of the caller's)."""
    one_api(ctx)
    obs = await ctx.js.object_store(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    res = await ctx.call("objectstore.get", obs.get("obj"), timeout=ctx.params["call_timeout"] or None)
    if len(res.data) != ctx.params["size"]:
        raise IntegrityError(f"object truncated: got {len(res.data)} of {ctx.params['size']} bytes, no error raised")
    return {"bytes": len(res.data)}


async def _prepare_kv(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    kv = await js.create_key_value(bucket=names.bucket)
    await kv.put("k", b"v" * params["size"])


@flow("kv.get", triggers=("in_call",), prepare=_prepare_kv, defaults={"size": 1024, "call_timeout": 5.0, "api": ""}, consumer_stream="kv")
async def kv_get(ctx: Any) -> dict:
    """Get one key from a KV bucket."""
    one_api(ctx)
    kv = await ctx.js.key_value(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    e = await ctx.call("kv.get", kv.get("k"), timeout=ctx.params["call_timeout"] or None)
    return {"bytes": len(e.value or b"")}


async def _prepare_kv_keys(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    kv = await js.create_key_value(bucket=names.bucket)
    for i in range(params["keys"]):
        await kv.put(f"k{i}", b"v")


@flow(
    "kv.keys",
    triggers=("in_call", "api_request"),
    prepare=_prepare_kv_keys,
    defaults={"keys": 20, "js_timeout": 1.0, "api": ""},
    consumer_stream="kv",
    requires=("nats.js.kv.KeyValue.keys",),
)
async def kv_keys(ctx: Any) -> dict:
    """List a bucket's keys (`kv.keys()` runs a temporary watcher inside), no caller timeout.

    `api_request` fires once the server got `watch()`'s own `consumer_info()`, while
    `keys()`'s second `consumer_info()` is on its way (KI-011's window).
    """
    one_api(ctx)
    kv = await ctx.nc.jetstream(timeout=ctx.params["js_timeout"]).key_value(ctx.names.bucket)
    await ctx.checkpoint("in_call")
    keys = await ctx.call("kv.keys", kv.keys())
    if len(keys) != ctx.params["keys"]:
        raise IntegrityError(f"kv.keys returned {len(keys)} of {ctx.params['keys']} keys")
    return {"keys": len(keys)}


@flow("kv.watch", triggers=("blocked",), prepare=_prepare_kv_keys, defaults={"keys": 5, "js_timeout": 5.0, "api": ""}, consumer_stream="kv",
      requires=("nats.js.kv.KeyValue.watchall",))
async def kv_watch(ctx: Any) -> dict:
    """`async for entry in kv.watchall()`: the initial values, then wait for updates until stopped."""
    one_api(ctx)
    kv = await ctx.nc.jetstream(timeout=ctx.params["js_timeout"]).key_value(ctx.names.bucket)
    watcher = await kv.watchall()
    ctx.on_finish(watcher.stop)  # the flow's own terminal action
    seen: list[str] = []
    try:
        async for entry in ctx.iterate("kv.watch", watcher):
            if entry is None:  # end of the initial values
                ctx.received(seen)
                continue
            seen.append(entry.key)
    finally:
        if not ctx.finish_requested and ctx.nc.is_connected:
            await watcher.stop()
    return {"seen": len(seen)}


async def _prepare_stream_msg(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"], allow_direct=True))
    await js.publish(f"{names.subject}.m", b"x" * params["size"])


@flow(
    "stream.get_msg",
    triggers=("in_call",),
    prepare=_prepare_stream_msg,
    defaults={"size": 1024, "direct": False, "call_timeout": 5.0, "api": ""},
    requires=("nats.js.JetStreamContext.get_msg",),
)
async def stream_get_msg(ctx: Any) -> dict:
    """Get a stored message by sequence (JetStream API, or direct get with direct: true)."""
    one_api(ctx)
    if ctx.params["direct"]:
        compat.require_param(ctx.js.get_msg, "direct", "direct get")
    await ctx.checkpoint("in_call")
    m = await ctx.call(
        "stream.get_msg",
        ctx.js.get_msg(ctx.names.stream, seq=1, **({"direct": True} if ctx.params["direct"] else {})),
        timeout=ctx.params["call_timeout"] or None,
    )
    return {"bytes": len(m.data or b"")}
