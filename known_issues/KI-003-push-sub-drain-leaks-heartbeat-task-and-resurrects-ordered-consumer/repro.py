"""KI-003: sub.drain() on a JetStream push subscription with idle heartbeats
does not stop the subscription's heartbeat / flow-control tasks. For an
ordered consumer the leftover heartbeat task then *resurrects* it: ~2 x
idle_heartbeat after the drain it re-subscribes (new sid in nc._subs) and
creates a brand-new push-bound consumer on the server, which lives as long
as the connection.

Flow: js.subscribe(ordered_consumer=True, idle_heartbeat=1) (variant A) and
js.subscribe(idle_heartbeat=1, ack_policy=none) (variant B), `async for msg
in sub.messages` until all 5 stored messages are seen.
Fault (drain kind): sub.drain(), fired once the iterator has seen all 5 msgs.
Check: 4 s later, with the connection still open: tasks, nc._subs, consumers.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402
from nats.js import api  # noqa: E402

# the connection's own request-mux subscription task (JS API replies) is expected
EXPECTED = {"Subscription._wait_for_msgs"}


async def variant(s, ojs, stream, ordered):
    nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
    js = nc.jetstream()
    await js.account_info()  # creates the request mux up front, so it is in the baseline
    baseline = task_snapshot()
    subs_before = set(nc._subs)
    if ordered:
        sub = await js.subscribe(f"{stream}.>", ordered_consumer=True, idle_heartbeat=1)
    else:
        sub = await js.subscribe(f"{stream}.>", idle_heartbeat=1,
                                 config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE))
    seen = 0

    async def consume():
        nonlocal seen
        async for _ in sub.messages:
            seen += 1
        return "ended"

    it = asyncio.create_task(consume())
    await wait_until(lambda: seen >= 5, 5)
    original = [c.name for c in await ojs._jsm.consumers_info(stream)]
    await sub.drain()
    ended = await wait_until(lambda: it.done(), 2)
    await asyncio.sleep(4)  # > 2 x idle_heartbeat
    tasks = [t for t in new_tasks(baseline) if t not in EXPECTED]
    subs = [(sid, nc._subs[sid].subject) for sid in set(nc._subs) - subs_before]
    bound = [(c.name, c.config.deliver_subject) for c in await ojs._jsm.consumers_info(stream)
             if c.push_bound]
    await nc.close()
    return dict(seen=seen, iterator_ended=ended, original=original, tasks=tasks, subs=subs, bound=bound)


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        ojs = obs.jetstream()
        for st in ("KIA", "KIB"):
            await ojs.add_stream(name=st, subjects=[f"{st}.>"])
            for i in range(5):
                await ojs.publish(f"{st}.x", b"m%d" % i)
        a = await variant(s, ojs, "KIA", ordered=True)
        b = await variant(s, ojs, "KIB", ordered=False)
        await obs.close()
        resurrected = bool(a["subs"]) and bool(a["bound"])
        leaked_hb = "JetStreamContext._JSI.activity_check" in b["tasks"]
        msg = (f"A ordered: iterator ended={a['iterator_ended']}, 4s after sub.drain(): tasks={a['tasks']}, "
               f"new subs={a['subs']}, push_bound consumers={a['bound']} (original consumer {a['original']}); "
               f"B heartbeat push: iterator ended={b['iterator_ended']}, tasks={b['tasks']}, subs={b['subs']}, "
               f"push_bound={b['bound']}")
        return resurrected or leaked_hb, msg


if __name__ == "__main__":
    run(main)
