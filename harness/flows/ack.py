"""Ack flows: fetch a batch, hold at `before_ack` (where the fault goes in), then acknowledge."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.flows import compat, flow, one_api
from harness.flows.next import prepare_stream_with_durable

ACK_KINDS = ("ack", "ack_sync", "nak", "nak_delay", "in_progress", "term")


def _ack_flow(kind: str) -> None:
    async def run(ctx: Any) -> dict:
        one_api(ctx)
        sub = await compat.pull_bind(ctx.js, durable=ctx.names.consumer, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
        ctx.track(sub)
        try:
            msgs: list = []
            while not msgs:
                ctx.check_deadline(f"0 of {ctx.params['count']} messages")
                try:
                    msgs = await ctx.call("fetch", sub.fetch(ctx.params["count"], timeout=ctx.params["fetch_timeout"]))
                except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
                    continue
            for m in msgs:
                ctx.delivered(m)
            ctx.received([m.data.decode() for m in msgs])
            await ctx.checkpoint("before_ack")
            t = ctx.params["ack_timeout"]
            for m in msgs:
                if kind == "ack":
                    await ctx.call("ack", m.ack())
                elif kind == "ack_sync":
                    await ctx.call("ack_sync", m.ack_sync(timeout=t))
                elif kind == "nak":
                    await ctx.call("nak", m.nak())
                elif kind == "nak_delay":
                    await ctx.call("nak", m.nak(delay=ctx.params["nak_delay"]))
                elif kind == "in_progress":
                    await ctx.call("in_progress", m.in_progress())
                elif kind == "term":
                    await ctx.call("term", m.term())
            # A careful user makes sure fire-and-forget acks reach the server.
            await ctx.call("flush", ctx.nc.flush(timeout=t))
        finally:
            await sub.unsubscribe()
        # ack_sync returned for each: the server has confirmed them (the `messages` check verifies).
        return {"acked": len(msgs), "kind": kind, "confirmed": len(msgs) if kind == "ack_sync" else 0}

    run.__doc__ = f"Fetch a batch from a durable pull consumer and `{kind}` every message."
    flow(
        f"ack.{kind}",
        triggers=("before_ack",),
        prepare=prepare_stream_with_durable,
        defaults={"count": 5, "fetch_timeout": 2.0, "ack_timeout": 2.0, "nak_delay": 1.0, "api": ""},
        requires=("nats.aio.msg.Msg.nak(delay)",) if kind == "nak_delay" else (),
    )(run)


for _k in ACK_KINDS:
    _ack_flow(_k)
