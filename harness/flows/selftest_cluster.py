"""Self-test flows for the cluster checks: misbehave on purpose on a 3-node cluster (and their
clean twins), to prove the checks that see the whole cluster catch them.

- `selftest.reread_after_move`: acks every message (confirmed), then, once the consumer's
  leader has moved (the scenario's `cluster.stepdown_consumer` at `in_call`), hands one
  acknowledged message to the application again, as a client replaying a stale buffer after
  a leader change would; `selftest.reread_clean` reads again and gets nothing, as it should.
- `selftest.follower_consumer`: creates a durable consumer through the node it is connected
  to, which prepare made a follower of the stream (the stream's leader is stepped down until
  another node leads), and never deletes it; `selftest.follower_consumer_clean` deletes it.
- `selftest.ack_unseen`: fetches every message from the flow's durable and acks each (confirmed),
  but hands the application all but the last one — a client that acks on the application's
  behalf what it never delivered (as one dropping a message in a leader change would); the
  consumer's leader then moves. The server counts every message acked, the client's ledger
  one fewer (`accounting`). `selftest.ack_unseen_clean` hands over every message it acks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Mapping

from nats.js.api import AckPolicy, ConsumerConfig

from harness.flows import Names, flow
from harness.flows.next import prepare_stream, prepare_stream_with_durable

CLIENT_NODE = "n1"  # the node the client under test starts on (the environment lists it first)


def _reread_flow(name: str, leaky: bool) -> None:
    async def run(ctx: Any) -> dict:
        sub = await ctx.js.pull_subscribe_bind(durable=ctx.names.consumer, stream=ctx.names.stream)
        got: list = []
        try:
            while len(got) < ctx.params["count"]:
                try:
                    msgs = await ctx.call("fetch", sub.fetch(ctx.params["count"] - len(got), timeout=1.0))
                except asyncio.TimeoutError:
                    continue
                for m in msgs:
                    ctx.delivered(m)
                    await m.ack_sync(timeout=5)
                    got.append(m)
            ctx.received([m.data.decode() for m in got])
            await ctx.checkpoint("in_call")  # the consumer's leader moves here
            if leaky:
                ctx.delivered(got[0])  # an acknowledged message handed over again after the move
            try:  # read again: nothing is left to deliver
                again = await ctx.call("fetch", sub.fetch(1, timeout=1.0))
                for m in again:
                    ctx.delivered(m)
            except asyncio.TimeoutError:
                pass
        finally:
            await sub.unsubscribe()
        return {"received": len(got), "confirmed": len(got)}

    run.__doc__ = ("Ack every message, then hand an acknowledged one over again once the leader moved." if leaky
                   else "Ack every message, then read again after the leader moved (nothing comes).")
    flow(name, triggers=("in_call",), prepare=prepare_stream_with_durable, defaults={"count": 5})(run)


_reread_flow("selftest.reread_after_move", leaky=True)
_reread_flow("selftest.reread_clean", leaky=False)


def _ack_unseen_flow(name: str, leaky: bool) -> None:
    async def run(ctx: Any) -> dict:
        sub = await ctx.js.pull_subscribe_bind(durable=ctx.names.consumer, stream=ctx.names.stream)
        acked: list = []
        try:
            while len(acked) < ctx.params["count"]:
                ctx.check_deadline(f"{len(acked)} of {ctx.params['count']} acked")
                try:
                    msgs = await ctx.call("fetch", sub.fetch(ctx.params["count"] - len(acked), timeout=1.0))
                except asyncio.TimeoutError:
                    continue
                for m in msgs:
                    await m.ack_sync(timeout=5)
                    acked.append(m)
            handed = acked[:-1] if leaky else acked  # the last one acked, never handed over
            for m in handed:
                ctx.delivered(m)
            ctx.received([m.data.decode() for m in handed])
            await ctx.checkpoint("in_call")  # the consumer's leader moves here
        finally:
            await sub.unsubscribe()
        return {"received": len(handed), "confirmed": len(acked)}

    run.__doc__ = ("Ack every message (confirmed), hand the application all but the last one." if leaky
                   else "Ack every message (confirmed) and hand each one to the application.")
    flow(name, triggers=("in_call",), prepare=prepare_stream_with_durable, defaults={"count": 5})(run)


_ack_unseen_flow("selftest.ack_unseen", leaky=True)
_ack_unseen_flow("selftest.ack_unseen_clean", leaky=False)


async def prepare_led_elsewhere(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    """A stream with `count` messages whose leader is not the client's node (bounded stepdowns)."""
    await prepare_stream(js, names, params)
    nc = js._nc
    for _ in range(10):
        info = json.loads((await nc.request(f"$JS.API.STREAM.INFO.{names.stream}", b"", timeout=5)).data)
        if (info.get("cluster") or {}).get("leader") not in (None, CLIENT_NODE):
            return
        await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{names.stream}", b"", timeout=5)
        await asyncio.sleep(0.2)
    raise RuntimeError(f"stream {names.stream} still led by {CLIENT_NODE} after 10 stepdowns")


def _follower_consumer_flow(name: str, leaky: bool) -> None:
    async def run(ctx: Any) -> dict:
        durable = f"made_on_follower_{ctx.names.tag}"
        await ctx.call("add_consumer", ctx.js.add_consumer(
            ctx.names.stream, ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT)))
        if not leaky:
            await ctx.call("delete_consumer", ctx.js.delete_consumer(ctx.names.stream, durable))
        return {"consumer": durable}

    run.__doc__ = ("Create a durable consumer through a follower of the stream and never delete it." if leaky
                   else "Create the same consumer through a follower, then delete it.")
    flow(name, triggers=("in_call",), prepare=prepare_led_elsewhere, defaults={"count": 3})(run)


_follower_consumer_flow("selftest.follower_consumer", leaky=True)
_follower_consumer_flow("selftest.follower_consumer_clean", leaky=False)
