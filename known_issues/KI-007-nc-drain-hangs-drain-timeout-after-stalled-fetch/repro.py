"""KI-007: after a pull fetch() was caught by a stall, nc.drain() blocks for
the whole drain_timeout (30 s by default) and reports DrainTimeoutError,
even though the application already fetched everything and the pull
subscription's queue is empty.

Why: the stall delays the server's "408 Request Timeout" status for the
expired pull request; it lands in the subscription's pending queue after
fetch() gave up. The next fetch() takes it out with queue.get_nowait() but
never calls queue.task_done(), so the queue's unfinished-task counter stays
at 1 and Subscription._drain()'s `await self._pending_queue.join()` never
returns.

Control: the same flow, but the first fetch finds a message (no expired pull
request, no 408): drain returns at once.
Also reported (not part of the verdict): the same flow with a first fetch
that simply expires on an empty stream, no fault at all. The server's expiry
(timeout - 100 us) races the client's own timer, so the 408 often lands
after fetch() gave up even without a stall, with the same effect.
Flow: js.pull_subscribe, fetch(1, timeout=2) waiting on the consumer
(num_waiting >= 1) -> stall (bandwidth rate=0 downstream) -> fetch raises
TimeoutError -> heal -> the 408 arrives (psub.pending_msgs == 1) -> publish
one message -> fetch(1) gets it -> nc.drain() (drain_timeout=6 here).
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, quiet_nats_logs, run, wait_until  # noqa: E402

import nats  # noqa: E402

DRAIN_TIMEOUT = 6


async def flow(s, obs, name, stall, msg_first=False):
    errors = []

    async def error_cb(e):
        errors.append(type(e).__name__)

    nc = await nats.connect(s.proxy_url, drain_timeout=DRAIN_TIMEOUT, error_cb=error_cb)
    js = nc.jetstream()
    psub = await js.pull_subscribe(f"ki007.{name}", durable=name)

    if msg_first:
        await obs.publish(f"ki007.{name}", b"first")
    first = asyncio.create_task(psub.fetch(1, timeout=2))

    async def waiting():
        return (await psub.consumer_info()).num_waiting >= 1 if not stall else \
            (await obs.jetstream().consumer_info("KI007", name)).num_waiting >= 1
    if not msg_first:
        await wait_until(waiting, 3)
    if stall:
        s.add_toxic("stall", "bandwidth", "downstream", rate=0)
    try:
        await first
        first_res = "returned"
    except Exception as e:
        first_res = type(e).__name__
    if stall:
        s.remove_toxic("stall")
        await wait_until(lambda: psub.pending_msgs >= 1, 3)  # the late 408 status has arrived
    late = psub.pending_msgs
    await obs.publish(f"ki007.{name}", b"payload")
    got = [m.data for m in await psub.fetch(1, timeout=2)]
    q = psub._sub._pending_queue
    state = f"qsize={q.qsize()} unfinished_tasks={q._unfinished_tasks}"
    t0 = time.monotonic()
    await nc.drain()
    took = time.monotonic() - t0
    return dict(first=first_res, late=late, got=got, state=state, took=took, errors=errors)


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        obs = await nats.connect(s.nats_url)
        await obs.jetstream().add_stream(name="KI007", subjects=["ki007.>"])
        ctl = await flow(s, obs, "control", stall=False, msg_first=True)
        nof = await flow(s, obs, "nofault", stall=False)
        bad = await flow(s, obs, "stalled", stall=True)
        await obs.close()
        msg = "; ".join(
            f"{n}: first fetch {r['first']}, late msgs in queue={r['late']}, second fetch got {r['got']}, "
            f"before drain {r['state']}, nc.drain() took {r['took']:.2f}s, error_cb={r['errors']}"
            for n, r in (("control (msg available)", ctl), ("no fault, fetch expires", nof), ("stall", bad)))
        reproduced = ctl["took"] < 2 and bad["took"] >= DRAIN_TIMEOUT - 0.5 and "DrainTimeoutError" in bad["errors"]
        return reproduced, msg


if __name__ == "__main__":
    run(main)
