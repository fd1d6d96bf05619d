"""KI-009: the per-subscription heartbeat monitor task
(JetStreamContext._JSI.activity_check) of any JetStream push subscription
with idle heartbeats (every ordered consumer: js.subscribe(ordered_consumer=
True), ObjectStore.get, KV watchers) survives nc.close() for up to
2 x idle_heartbeat (10 s with the default 5 s). nc.close() cancels the read
loop, flusher, pinger and subscription tasks but not the _JSI tasks; the
monitor only notices the closed connection after its next 2 x hb sleep.

Flow: js.subscribe(ordered_consumer=True) (default idle_heartbeat 5 s),
`async for` over 5 stored messages; then nc.close() (no unsubscribe first:
closing the connection is the documented way to end everything).
Trigger: all 5 messages received. Check: no client task may remain 1 s after
nc.close(); measure how long the task actually lingers (bounded 12 s).
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        ojs = obs.jetstream()
        await ojs.add_stream(name="KI009", subjects=["ki009.>"])
        for i in range(5):
            await ojs.publish("ki009.x", b"m%d" % i)

        nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        js = nc.jetstream()
        baseline = task_snapshot()
        sub = await js.subscribe("ki009.>", ordered_consumer=True)
        seen = 0

        async def consume():
            nonlocal seen
            async for _ in sub.messages:
                seen += 1

        it = asyncio.create_task(consume())
        await wait_until(lambda: seen >= 5, 5)
        await nc.close()
        t0 = time.monotonic()
        await wait_until(lambda: it.done(), 2)
        await asyncio.sleep(max(0.0, 1 - (time.monotonic() - t0)))
        after_1s = new_tasks(baseline)
        gone = await wait_until(lambda: not new_tasks(baseline), 12, 0.05)
        linger = time.monotonic() - t0
        await obs.close()
        reproduced = "JetStreamContext._JSI.activity_check" in after_1s
        return reproduced, (f"received {seen}/5, iterator ended={it.done()}; 1s after nc.close() tasks={after_1s}; "
                            f"{'all gone' if gone else 'still there'} after {linger:.1f}s "
                            f"(idle_heartbeat=5s, bound 2 x hb = 10s)")


if __name__ == "__main__":
    run(main)
