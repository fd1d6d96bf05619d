"""NR-003 (near miss, NOT a finding): `async for msg in sub.messages` ends
promptly after sub.unsubscribe(), sub.drain(), nc.drain() and nc.close(),
for a core subscription and for a JetStream push subscription
(js.subscribe without callback). (PullSubscription has no `.messages` in
nats-py 2.16.0; its read path is fetch(), covered by KI-004/KI-005.)

Trigger: the iterator is parked in __anext__ after receiving one message.
Check: it ends within 1 s; 1 s later no task remains other than the
connection's own machinery. (An `Queue.get` task cancelled by __anext__ may
be seen for one loop iteration; it is gone by the second snapshot.)
Prints REPRODUCED (exit 1) if any check fails.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import CONN_TASKS, Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402


async def case(s, kind, action, idx):
    nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
    js = nc.jetstream()
    await js.account_info()
    baseline = task_snapshot()
    if kind == "core":
        sub = await nc.subscribe(f"nr3.core.{idx}")
        await nc.publish(f"nr3.core.{idx}", b"x")
    else:
        await js.publish(f"nr3.js.{idx}", b"x")
        sub = await js.subscribe(f"nr3.js.{idx}")
    seen = 0

    async def consume():
        nonlocal seen
        async for _ in sub.messages:
            seen += 1

    it = asyncio.create_task(consume())
    await wait_until(lambda: seen >= 1, 3)
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    if action == "unsubscribe":
        await sub.unsubscribe()
    elif action == "sub.drain":
        await sub.drain()
    elif action == "nc.drain":
        await nc.drain()
    else:
        await nc.close()
    ended = await wait_until(lambda: it.done(), 1, 0.01)
    took = time.monotonic() - t0
    await asyncio.sleep(1)
    left = [t for t in new_tasks(baseline) if t not in CONN_TASKS or nc.is_closed]
    if not nc.is_closed:
        await nc.close()
    bad = not ended or bool(left) or seen < 1
    return bad, f"{kind}+{action}: {'ended in %.2fs' % took if ended else 'STUCK'}, left={left}"


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        await obs.jetstream().add_stream(name="NR3", subjects=["nr3.js.>"])
        lines, bad_any, i = [], False, 0
        for kind in ("core", "js-push"):
            for action in ("unsubscribe", "sub.drain", "nc.drain", "nc.close"):
                i += 1
                bad, line = await case(s, kind, action, i)
                bad_any = bad_any or bad
                lines.append(("!! " if bad else "") + line)
        await obs.close()
        return bad_any, "; ".join(lines)


if __name__ == "__main__":
    run(main)
