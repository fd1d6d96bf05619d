"""KI-005: nc.drain() closes the connection but leaves a pending
sub.next_msg() / pull fetch() blocked (until its own timeout; forever with
next_msg(timeout=None)). nc.close() releases the same waiter at once with
ConnectionClosedError; nc.drain() does not, because each subscription's
_drain() removes it from nc._subs before _close() walks nc._subs to cancel
pending next_msg calls.

Flows: (1) core sub next_msg(timeout=None); (2) js.pull_subscribe +
fetch(1, timeout=20); control: (1) + nc.close().
Trigger: waiter is blocked (sub._pending_next_msgs_calls non-empty; for fetch
the pull request is waiting on the consumer, num_waiting >= 1).
Fault (drain kind): nc.drain(). Check: connection is closed, waiter released
within 3 s.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, await_chain, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402


async def case(s, flow, action):
    nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
    js = nc.jetstream()
    await js.account_info()
    baseline = task_snapshot()
    if flow == "fetch":
        psub = await js.pull_subscribe("ki005.>", durable="d%d" % int(time.time() * 1000))
        waiter = asyncio.create_task(psub.fetch(1, timeout=20))

        async def waiting():
            return (await psub.consumer_info()).num_waiting >= 1
        await wait_until(waiting, 5)
    else:
        sub = await nc.subscribe("ki005.core")
        waiter = asyncio.create_task(sub.next_msg(timeout=None))
        await wait_until(lambda: bool(sub._pending_next_msgs_calls), 5)
    waiter.add_done_callback(lambda t: t.cancelled() or t.exception())
    blocked = not waiter.done()
    t0 = time.monotonic()
    await (nc.drain() if action == "nc.drain" else nc.close())
    t_action = time.monotonic() - t0
    released = await wait_until(lambda: waiter.done(), 3)
    t_rel = time.monotonic() - t0
    tasks = new_tasks(baseline)
    outcome = ((repr(waiter.exception()) if waiter.exception() else "returned") if waiter.done()
               else "STILL PENDING at " + await_chain(waiter))
    if not waiter.done():
        waiter.cancel()
    return dict(blocked=blocked, closed=nc.is_closed, released=released, t_action=t_action, t=t_rel,
                outcome=outcome, tasks=tasks)


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        await obs.jetstream().add_stream(name="KI005", subjects=["ki005.>"])
        res = {}
        for flow, action in (("next_msg", "nc.drain"), ("fetch", "nc.drain"), ("next_msg", "nc.close")):
            res[f"{flow}+{action}"] = await case(s, flow, action)
        await obs.close()
        stuck = [n for n, r in res.items() if n.endswith("nc.drain") and r["blocked"] and r["closed"]
                 and not r["released"]]
        control_ok = res["next_msg+nc.close"]["released"]
        parts = [f"{n}: {a['outcome']} (is_closed={a['closed']}, drain/close took {a['t_action']:.2f}s, "
                 f"{'released in %.2fs' % a['t'] if a['released'] else 'still blocked 3s after close'}; "
                 f"tasks={a['tasks']})" for n, a in res.items()]
        return bool(stuck) and control_ok, "; ".join(parts)


if __name__ == "__main__":
    run(main)
