"""KI-008: `async for entry in kv.watchall()` (a KV watcher; also what
kv.keys() and kv.history() iterate internally) never ends after nc.close()
or nc.drain(): the iterator waits on the watcher's own _updates queue, and
only watcher.stop() puts the stop sentinel there. Closing the connection
cancels the underlying subscription but nobody wakes the watcher.

Flow: 3 keys; watcher = await kv.watchall(); a task iterates it.
Trigger: the iterator has seen the 3 entries and the initial None marker.
Fault (drain kind): nc.close() / nc.drain(); control: watcher.stop().
Check: the iterator must end within 3 s.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, await_chain, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402


async def case(s, action):
    nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
    kv = await nc.jetstream().key_value("ki008")
    baseline = task_snapshot()
    watcher = await kv.watchall()
    seen = []

    async def consume():
        async for entry in watcher:
            seen.append(entry)
        return "ended"

    it = asyncio.create_task(consume())
    await wait_until(lambda: len(seen) >= 4, 5)  # 3 entries + None marker
    t0 = time.monotonic()
    if action == "watcher.stop":
        await watcher.stop()
    elif action == "nc.close":
        await nc.close()
    else:
        await nc.drain()
    ended = await wait_until(lambda: it.done(), 3)
    dt = time.monotonic() - t0
    tasks = new_tasks(baseline)
    chain = await_chain(it) if not it.done() else ""
    if not it.done():
        it.cancel()
    if not nc.is_closed:
        await nc.close()
    return dict(seen=len(seen), ended=ended, t=dt, tasks=tasks, chain=chain)


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        kv = await obs.jetstream().create_key_value(bucket="ki008")
        for i in range(3):
            await kv.put(f"k{i}", b"v")
        res = {a: await case(s, a) for a in ("watcher.stop", "nc.close", "nc.drain")}
        await obs.close()
        parts = [f"{a}: {'iterator ended in %.2fs' % r['t'] if r['ended'] else 'iterator STILL BLOCKED 3s later'}"
                 f" (entries seen {r['seen']}, tasks={r['tasks']}{', blocked at: ' + r['chain'] if r['chain'] else ''})" for a, r in res.items()]
        stuck = [a for a in ("nc.close", "nc.drain") if not res[a]["ended"] and res[a]["seen"] >= 4]
        return bool(stuck) and res["watcher.stop"]["ended"], "; ".join(parts)


if __name__ == "__main__":
    run(main)
