"""KI-004: a pending sub.next_msg() / pull fetch() is not woken when its own
subscription is unsubscribed or drained. It stays blocked until its own
timeout (forever with next_msg(timeout=None)), and even nc.close() does not
release it, because the subscription was already removed from nc._subs.

Flows / terminal events:
  1. core sub, next_msg(timeout=None), then sub.unsubscribe()
  2. core sub, next_msg(timeout=None), then sub.drain()
  3. js.pull_subscribe, fetch(1, timeout=20), then psub.unsubscribe()
  control: core sub, next_msg(timeout=None), then nc.close() (released at once)
Trigger: the waiter is really blocked (sub._pending_next_msgs_calls non-empty;
for fetch: the pull request is waiting on the consumer, num_waiting >= 1).
Check: waiter must finish within 3 s of the event; then close the connection
and give it 1 s more.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, await_chain, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402


async def case(s, ojs, name):
    nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
    js = nc.jetstream()
    await js.account_info()
    baseline = task_snapshot()
    if name.startswith("fetch"):
        psub = await js.pull_subscribe("ki004.>", durable="d_" + str(int(time.time() * 1000)))
        sub = psub._sub
        waiter = asyncio.create_task(psub.fetch(1, timeout=20))

        async def waiting():
            return (await psub.consumer_info()).num_waiting >= 1
        await wait_until(waiting, 5)
    else:
        sub = psub = await nc.subscribe("ki004.core")
        waiter = asyncio.create_task(sub.next_msg(timeout=None))
        await wait_until(lambda: bool(sub._pending_next_msgs_calls), 5)
    waiter.add_done_callback(lambda t: t.cancelled() or t.exception())  # silence "never retrieved"
    blocked = not waiter.done()

    t0 = time.monotonic()
    if name.endswith("unsubscribe"):
        await psub.unsubscribe()
    elif name.endswith("sub.drain"):
        await sub.drain()
    elif name.endswith("nc.close"):
        await nc.close()
    released = await wait_until(lambda: waiter.done(), 3)
    t_rel = time.monotonic() - t0
    tasks_open = [t for t in new_tasks(baseline) if t != "Subscription._wait_for_msgs"]
    released_by_close = None
    tasks_closed = []
    if not nc.is_closed:
        await nc.close()
        released_by_close = await wait_until(lambda: waiter.done(), 1)
        tasks_closed = new_tasks(baseline)
    if waiter.done():
        outcome = repr(waiter.exception()) if waiter.exception() else "returned"
    else:
        outcome = "STILL PENDING at " + await_chain(waiter)
        waiter.cancel()
    return dict(blocked=blocked, released=released, t=t_rel, by_close=released_by_close,
                outcome=outcome, tasks_open=tasks_open, tasks_closed=tasks_closed)


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        ojs = obs.jetstream()
        await ojs.add_stream(name="KI004", subjects=["ki004.>"])
        res = {}
        for name in ("next_msg+unsubscribe", "next_msg+sub.drain", "fetch+unsubscribe", "next_msg+nc.close"):
            res[name] = await case(s, ojs, name)
        await obs.close()
        stuck = [n for n, r in res.items() if n != "next_msg+nc.close" and r["blocked"] and not r["released"]]
        control_ok = res["next_msg+nc.close"]["released"]
        parts = []
        for n, r in res.items():
            if r["released"]:
                parts.append(f"{n}: released in {r['t']:.2f}s ({r['outcome']})")
            else:
                parts.append(f"{n}: still blocked 3s after the event, tasks={r['tasks_open']}; "
                             f"after nc.close()+1s: {r['outcome']}, tasks={r['tasks_closed']}")
        return bool(stuck) and control_ok, "; ".join(parts)


if __name__ == "__main__":
    run(main)
