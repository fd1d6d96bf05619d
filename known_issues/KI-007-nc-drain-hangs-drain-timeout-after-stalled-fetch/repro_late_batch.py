"""KI-007, the worker's path: a pull worker whose poll gave up while its pull request was
held by a stall gets that request's answer (real messages) late; the next poll takes them
from the queue with get_nowait() and never marks them done, so the shutdown nc.drain()
blocks for the whole drain_timeout and reports DrainTimeoutError.

This is the path the harness's `worker.pull[stall.bandwidth0@in_call]` and the order-worker
example take (fetch(5, timeout=1), back-off 1.5 s, stall 1.5 s from the first poll's end).

Flow: a durable pull consumer with 10 messages. fetch(5) -> 5 messages, acked. Stall
(bandwidth rate=0 both ways) -> fetch(5, timeout=1) raises TimeoutError (its pull request
is held in the proxy) -> heal during the back-off -> the request reaches the server, which
answers it with the 5 remaining messages (psub.pending_msgs == 5) -> fetch(5) returns them
(taken from the queue) -> ack -> nc.drain() (drain_timeout=6 here).
Control: the same without the stall: the second fetch gets its messages by itself.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, quiet_nats_logs, run, wait_until  # noqa: E402

import nats  # noqa: E402

DRAIN_TIMEOUT = 6


async def worker(s, obs, name, stall):
    errors = []

    async def error_cb(e):
        errors.append(type(e).__name__)

    ojs = obs.jetstream()
    await ojs.add_consumer("KI007B", durable_name=name, filter_subject=f"ki007b.{name}", ack_policy="explicit", ack_wait=30)
    for i in range(10):
        await ojs.publish(f"ki007b.{name}", str(i).encode())
    nc = await nats.connect(s.proxy_url, drain_timeout=DRAIN_TIMEOUT, error_cb=error_cb, ping_interval=1,
                            max_outstanding_pings=2)
    psub = await nc.jetstream().pull_subscribe_bind(durable=name, stream="KI007B")
    got = []
    for m in await psub.fetch(5, timeout=1):
        await m.ack()
        got.append(m.data)
    if stall:
        s.add_toxic("stall", "bandwidth", "downstream", rate=0)
        s.add_toxic("stall_up", "bandwidth", "upstream", rate=0)
    second = "returned"
    try:
        for m in await psub.fetch(5, timeout=1):
            await m.ack()
            got.append(m.data)
    except asyncio.TimeoutError as e:
        second = type(e).__name__
    late = 0
    if stall:
        s.remove_toxic("stall")
        s.remove_toxic("stall_up")
        await wait_until(lambda: psub.pending_msgs >= 5, 3)  # the late answer: the remaining messages
        late = psub.pending_msgs
        for m in await psub.fetch(5, timeout=1):  # the worker's next poll, after its back-off
            await m.ack()
            got.append(m.data)
    q = psub._sub._pending_queue
    state = f"qsize={q.qsize()} unfinished_tasks={q._unfinished_tasks}"
    t0 = time.monotonic()
    await nc.drain()
    took = time.monotonic() - t0
    return dict(second=second, late=late, got=len(set(got)), state=state, took=took, errors=errors)


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        obs = await nats.connect(s.nats_url)
        await obs.jetstream().add_stream(name="KI007B", subjects=["ki007b.>"])
        ctl = await worker(s, obs, "control", stall=False)
        bad = await worker(s, obs, "stalled", stall=True)
        await obs.close()
        msg = "; ".join(
            f"{n}: second fetch {r['second']}, late messages in queue={r['late']}, distinct messages handled={r['got']}, "
            f"before drain {r['state']}, nc.drain() took {r['took']:.2f}s, error_cb={r['errors']}"
            for n, r in (("control", ctl), ("stall during the second poll", bad)))
        reproduced = (ctl["took"] < 2 and bad["got"] == 10 and bad["took"] >= DRAIN_TIMEOUT - 0.5
                      and "DrainTimeoutError" in bad["errors"])
        return reproduced, msg


if __name__ == "__main__":
    run(main)
