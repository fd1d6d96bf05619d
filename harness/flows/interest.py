"""Interest retention: several consumers acking asynchronously at high throughput.

The stream keeps a message only while some consumer still has to acknowledge it: once every
consumer acked everything, it must be empty (the `interest` check). Reported broken on
nats-server 2.10.25 (messages kept after every ack; fixed by a retry in 2.10.26).
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

from harness.flows import Names, compat, flow

GROUP = "workers"


def pull_durables(names: Names) -> tuple[str, str]:
    return f"{names.consumer}_p1", f"{names.consumer}_p2"


async def prepare_interest(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    """An interest stream, a push consumer for a queue group (flow control, heartbeats) and two
    pull consumers, then `count` messages (consumers first: without interest nothing is kept)."""
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"], retention=RetentionPolicy.INTEREST))
    common = dict(ack_policy=AckPolicy.EXPLICIT, ack_wait=params["ack_wait"], max_ack_pending=100_000)
    await js.add_consumer(names.stream, ConsumerConfig(
        durable_name=f"{names.consumer}_{GROUP}", deliver_subject=f"deliver.{names.tag}", deliver_group=f"{names.consumer}_{GROUP}",
        flow_control=True, idle_heartbeat=1.0, **common))
    for d in pull_durables(names):
        await js.add_consumer(names.stream, ConsumerConfig(durable_name=d, **common))
    for base in range(0, params["count"], 500):  # 500 publishes in flight at a time
        await asyncio.gather(*(js.publish(f"{names.subject}.{i % 16}", b"x" * 64)
                               for i in range(base, min(params["count"], base + 500))))


@flow(
    "interest.ack_async",
    triggers=("in_call",),
    prepare=prepare_interest,
    defaults={"count": 5000, "batch": 200, "ack_wait": 2.0, "fetch_timeout": 0.5, "linger": 2.5},
)
async def ack_async(ctx: Any) -> dict:
    """Two queue subscribers (push, flow control) and two pull workers ack every message asynchronously."""
    count, durable = ctx.params["count"], f"{ctx.names.consumer}_{GROUP}"
    seen: dict[str, set[int]] = {durable: set(), **{d: set() for d in pull_durables(ctx.names)}}
    done = asyncio.Event()  # every consumer saw every sequence
    stop = asyncio.Event()  # the workers stop fetching

    def got(consumer: str, msg: Any) -> None:
        ctx.delivered(msg)
        seen[consumer].add(msg.metadata.sequence.stream)
        if all(len(s) >= count for s in seen.values()):
            done.set()

    async def on_push(msg: Any) -> None:
        got(durable, msg)
        await msg.ack()  # fire and forget: a reply is never awaited

    subs = [await ctx.js.subscribe(f"{ctx.names.subject}.>", queue=durable, durable=durable, cb=on_push, manual_ack=True,
                                   flow_control=True, idle_heartbeat=1.0,
                                   **compat.supported(ctx.js.subscribe, pending_msgs_limit=-1, pending_bytes_limit=-1))
            for _ in range(2)]

    async def worker(d: str) -> None:
        psub = await compat.pull_bind(ctx.js, durable=d, stream=ctx.names.stream, subject=f"{ctx.names.subject}.>")
        try:
            while not stop.is_set():
                try:
                    msgs = await psub.fetch(ctx.params["batch"], timeout=ctx.params["fetch_timeout"])
                except asyncio.TimeoutError:  # nats.errors.TimeoutError, or the bare one fetch() sometimes re-raises
                    continue
                except nats.errors.Error as e:  # e.g. a status while the consumer's leader moves: a careful worker retries
                    fetch_errors.append(f"{d}: {type(e).__name__}: {e}")
                    await asyncio.sleep(0.1)
                    continue
                for m in msgs:
                    got(d, m)
                    await m.ack()
        finally:
            await psub.unsubscribe()

    fetch_errors: list[str] = []  # what fetch raised besides timeouts (reported with the result)
    workers = [asyncio.get_running_loop().create_task(worker(d)) for d in pull_durables(ctx.names)]
    try:
        while not any(len(s) >= count // 4 for s in seen.values()):  # the fault goes in with acks in flight
            ctx.check_deadline(f"{min(len(s) for s in seen.values())} of {count} messages on every consumer")
            await asyncio.sleep(0.01)
        await ctx.checkpoint("in_call")
        while not done.is_set():
            ctx.check_deadline(f"{min(len(s) for s in seen.values())} of {count} messages on every consumer")
            try:
                await ctx.call("every consumer's last message", asyncio.wait_for(done.wait(), 0.5))
            except asyncio.TimeoutError:
                pass
        # Acks lost to the fault come back as redeliveries after ack_wait: a careful consumer is
        # still there to ack them (the `interest` check judges only once every consumer acked all).
        linger = asyncio.get_running_loop().time() + ctx.params["linger"]
        while asyncio.get_running_loop().time() < linger:
            ctx.check_deadline("every message, lingering for redeliveries")
            await asyncio.sleep(0.1)
        await ctx.call("flush", ctx.nc.flush(timeout=2))  # the last acks reach the server
    finally:
        stop.set()
        for w in workers:
            try:
                await asyncio.wait_for(w, 3)
            except Exception:  # a worker cut off by the fault: its error is not this flow's result
                pass
        for s in subs:
            try:
                await s.unsubscribe()
            except Exception:  # already gone with a closed connection (a drain or close fault)
                pass
    return {"received": min(len(s) for s in seen.values()), "consumers": len(seen), "fetch_errors": len(fetch_errors),
            "fetch_error_examples": fetch_errors[:3]}
