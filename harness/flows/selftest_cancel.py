"""Self-tests of the cancel family: a message source whose cancelled waiter swallows the next
message (must be caught by the `delivery` check, 5/5), and its clean twin (must pass, 5/5).

The source is a toy client of the kind the cancel family hunts in real ones: callers wait on
futures; a message goes to the first waiter, else into a queue. The leaky one leaves a
cancelled caller's future in the waiter list, and the next message is handed to that dead
future — lost. The clean one removes its future when its caller gives up.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from harness.flows import flow
from harness.flows.continuation import CONTINUE, publish_after, wait_for_waiting
from harness.flows.next import prepare_stream


class _Source:
    def __init__(self, clean: bool) -> None:
        self.clean = clean
        self.waiters: collections.deque[asyncio.Future] = collections.deque()
        self.queue: collections.deque[Any] = collections.deque()

    async def deliver(self, msg: Any) -> None:
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(msg)
                return
            if not self.clean:
                return  # the deliberate bug: the cancelled caller's future swallows the message
        self.queue.append(msg)

    async def next(self) -> Any:
        if self.queue:
            return self.queue.popleft()
        w = asyncio.get_running_loop().create_future()
        self.waiters.append(w)
        try:
            return await w
        except asyncio.CancelledError:
            if self.clean and w in self.waiters:
                self.waiters.remove(w)
            raise


async def _run(ctx: Any, clean: bool) -> dict:
    src = _Source(clean)
    sub = await ctx.nc.subscribe(f"{ctx.names.subject}.>", cb=src.deliver)
    try:
        ctx.received([])
        await wait_for_waiting(ctx, "source.next", src.next, within=ctx.params["wait_timeout"])
        await publish_after(ctx)
        end = time.monotonic() + ctx.params["after_wait"]
        while ctx.continuation.missing() and time.monotonic() < end:
            try:
                m = await ctx.call("source.next", src.next(), timeout=ctx.params["next_timeout"])
            except asyncio.TimeoutError:
                continue
            ctx.continuation.received(m.data.decode())
    finally:
        await sub.unsubscribe()
    return {"after": len(ctx.continuation.published), "after_delivered": len(ctx.continuation.got)}


@flow("selftest.cancel_swallows_next", triggers=("blocked",), prepare=prepare_stream, defaults={"count": 0, **CONTINUE})
async def cancel_swallows_next(ctx: Any) -> dict:
    """Leaky on purpose: a cancelled waiter stays registered and swallows the next message."""
    return await _run(ctx, clean=False)


@flow("selftest.cancel_clean", triggers=("blocked",), prepare=prepare_stream, defaults={"count": 0, **CONTINUE})
async def cancel_clean(ctx: Any) -> dict:
    """The clean twin: a cancelled waiter leaves the waiter list."""
    return await _run(ctx, clean=True)
