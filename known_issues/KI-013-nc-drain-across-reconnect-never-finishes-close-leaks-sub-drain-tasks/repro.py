"""KI-013: nc.drain() issued during a stall that the client detects (ping timeout,
reconnect) is not woken by the reconnect: it waits out its 10 s flush timeout on a
healthy connection. An nc.close() while it waits leaves its Subscription._drain
tasks pending after close (until that flush timeout: bounded, like KI-009).

Control: the same drain with no stall closes the connection at once, no task left.
Flow: a client configured to notice a dead link (ping_interval=1,
max_outstanding_pings=2, reconnect_time_wait=0.25) with one core subscription
that has received a message; nc.drain() started as a task.
Fault: Toxiproxy bandwidth rate 0 both ways, in place before nc.drain() is
called (evidence: a request gets no answer), healed 4 s later, after the
client has declared the connection stale (disconnected_cb fired).
Check: the drain gets 3 s after the heal (the reconnect is at once); then the
application closes: nc.close(). 1 s and 15 s later: Subscription._drain tasks
still pending? Does the nc.drain() call itself ever return?
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, quiet_error_cb, quiet_nats_logs, run, task_snapshot  # noqa: E402

import nats  # noqa: E402

HEAL_AFTER = 4.0
AFTER_HEAL = 3.0  # the drain has this long after the heal (and the reconnect) to finish
LATER = 15.0  # still pending this long after close: they never end


async def flow(s, stall):
    events = []

    async def disconnected():
        events.append(("disconnected", time.monotonic()))

    async def reconnected():
        events.append(("reconnected", time.monotonic()))

    nc = await nats.connect(s.proxy_url, ping_interval=1, max_outstanding_pings=2, reconnect_time_wait=0.25,
                            max_reconnect_attempts=-1, error_cb=quiet_error_cb,
                            disconnected_cb=disconnected, reconnected_cb=reconnected)
    sub = await nc.subscribe("ki013.x")
    await nc.publish("ki013.x", b"hello")
    await sub.next_msg(timeout=2)
    evidence = None
    if stall:
        s.add_toxic("stall_down", "bandwidth", "downstream", rate=0)
        s.add_toxic("stall_up", "bandwidth", "upstream", rate=0)
        try:
            await nc.request("ki013.nobody", b"", timeout=0.5)
            evidence = False
        except Exception:
            evidence = True
    t0 = time.monotonic()
    drain = asyncio.create_task(nc.drain())
    if stall:
        await asyncio.sleep(HEAL_AFTER)
        s.remove_toxic("stall_down")
        s.remove_toxic("stall_up")
        healed = time.monotonic()
    else:
        healed = t0
    done, _ = await asyncio.wait({drain}, timeout=AFTER_HEAL + (healed - time.monotonic()))
    drain_state = "finished" if drain in done else "still pending"
    took = time.monotonic() - t0
    await nc.close()  # the application gives up on the drain and closes
    await asyncio.sleep(1.0)
    left = sorted(n for n in task_snapshot().values() if n == "Subscription._drain")
    await asyncio.sleep(LATER - 1.0)
    later = sorted(n for n in task_snapshot().values() if n == "Subscription._drain")
    drain_after_close = "finished" if drain.done() else "still pending"
    if not drain.done():
        drain.cancel()
    kinds = [k for k, _ in events]
    return dict(drain=drain_state, took=took, closed=nc.is_closed, left=left, later=later, evidence=evidence,
                events=kinds, drain_after_close=drain_after_close)


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        ctl = await flow(s, stall=False)
        bad = await flow(s, stall=True)
        parts = []
        for n, r in (("control", ctl), ("stall", bad)):
            parts.append(f"{n}: nc.drain() {r['drain']} after {r['took']:.1f}s (connection events {r['events']}), "
                         f"1s after nc.close(): is_closed={r['closed']}, pending tasks {r['left']}, "
                         f"{LATER:.0f}s after: {r['later']}, drain {r['drain_after_close']}"
                         + (f", stall evidenced={r['evidence']}" if r['evidence'] is not None else ""))
        # Bounded (they end by the flush timeout), like KI-009: the residue is the tasks that
        # outlive close and the drain that is not woken by the reconnect.
        reproduced = (not ctl["left"] and ctl["drain"] == "finished" and bad["evidence"]
                      and bad["drain"] == "still pending" and bool(bad["left"]))
        return reproduced, "; ".join(parts)


if __name__ == "__main__":
    run(main)
