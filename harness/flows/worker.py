"""Worker flows: a consume loop as services write it — fetch, process, ack, until done, then
shut down with `nc.drain()`."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.flows import compat, flow
from harness.flows.next import prepare_stream_with_durable, tally


@flow(
    "worker.pull",
    triggers=("in_call",),
    prepare=prepare_stream_with_durable,
    defaults={"count": 10, "batch": 5, "fetch_timeout": 1.0, "idle": 1.5, "work": 0.0},
    closes_client=True,
)
async def pull_worker(ctx: Any) -> dict:
    """Fetch a batch, process and ack each message, until every order is done; then `nc.drain()`.

    An empty or failed poll backs off `idle` seconds before the next, as a worker does so as
    not to hammer the server. The `in_call` checkpoint comes after the first batch is done:
    the fault lands between two polls. With a stall held longer than `fetch_timeout` but
    shorter than `fetch_timeout + idle`, the poll gives up while its pull request is still on
    its way, and the server's answer arrives during the back-off — a reply for a pull the
    client no longer waits on (the path of KI-007).
    """
    sub = await compat.pull_bind(ctx.js, durable=ctx.names.consumer, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
    ctx.track(sub)
    done: list[str] = []
    polls = empty = 0
    try:
        while len(set(done)) < ctx.params["count"]:  # distinct ids: a redelivery fills no gap
            ctx.check_deadline(f"{len(set(done))} of {ctx.params['count']} messages")
            polls += 1
            try:
                msgs = await ctx.call("fetch", sub.fetch(ctx.params["batch"], timeout=ctx.params["fetch_timeout"]))
            except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
                empty += 1
                await asyncio.sleep(ctx.params["idle"])
                continue
            for m in msgs:
                ctx.delivered(m)
                if ctx.params["work"]:
                    await asyncio.sleep(ctx.params["work"])  # the order's processing
                await ctx.call("ack", m.ack())
                done.append(m.data.decode())
            if polls == 1:
                await ctx.checkpoint("in_call")
        ctx.received(done)
    finally:
        # Shutdown: every message handled, the connection drained and closed. Whatever it
        # leaves pending (the drain included) must end within the stuck bound of this.
        ctx.terminal("nc.drain() at shutdown")
        if not ctx.nc.is_closed:
            await ctx.call("nc.drain", ctx.nc.drain())
    return {**tally(done), "polls": polls, "empty_polls": empty}
