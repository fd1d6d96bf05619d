"""KI-001: ObjectStore.get cancelled by the caller's timeout during a stall
leaks its ordered consumer (server), its subscription (client) and two tasks.

Flow: obs.get("big") of a 40-chunk object, wrapped in asyncio.wait_for(3s)
(ObjectStore.get has no timeout of its own, so a careful user adds one).
Fault: toxiproxy bandwidth rate=0 downstream, injected once >= 2 chunks have
been received by the client (observed via nc.stats["in_msgs"]).
Check: after get() has raised, heal the stall and look for residue.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402

CHUNK = 128 * 1024
NCHUNKS = 40


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)  # observer, bypasses the proxy
        ojs = obs.jetstream()
        await (await ojs.create_object_store("ki001")).put("big", os.urandom(CHUNK * NCHUNKS))

        nc = await nats.connect(s.proxy_url, error_cb=quiet_error_cb)
        js = nc.jetstream()
        store = await js.object_store("ki001")
        baseline = task_snapshot()
        subs_before = set(nc._subs)
        bytes0 = nc.stats["in_bytes"]

        async def inject_when_transferring():
            await wait_until(lambda: nc.stats["in_bytes"] - bytes0 >= 2 * CHUNK, 10, 0.0005)  # >= 2 chunks arrived
            s.add_toxic("stall", "bandwidth", "downstream", rate=0)
            return (nc.stats["in_bytes"] - bytes0) // 1024

        trig = asyncio.create_task(inject_when_transferring())
        t0 = time.monotonic()
        outcome = "returned"
        try:
            await asyncio.wait_for(store.get("big"), 3)
        except asyncio.TimeoutError:
            outcome = "TimeoutError (caller's wait_for)"
        elapsed = time.monotonic() - t0
        msgs_at_inject = await trig

        await asyncio.sleep(0.3)
        tasks_after_call = new_tasks(baseline)
        s.remove_toxic("stall")  # heal
        await asyncio.sleep(3)
        tasks_after_heal = new_tasks(baseline)
        leaked_subs = [(sid, nc._subs[sid].subject, nc._subs[sid]._pending_queue.qsize())
                       for sid in set(nc._subs) - subs_before]
        consumers = [(c.name, c.push_bound, c.config.deliver_subject)
                     for c in await ojs._jsm.consumers_info("OBJ_ki001")]
        bound = [c for c in consumers if c[1]]

        await nc.close()
        t_close = time.monotonic()
        await wait_until(lambda: not new_tasks(baseline), 12)
        linger = time.monotonic() - t_close
        await asyncio.sleep(0.5)
        consumers_after_close = [(c.name, c.push_bound) for c in await ojs._jsm.consumers_info("OBJ_ki001")]
        await obs.close()

        leaked_task_names = sorted(set(tasks_after_heal) & {"JetStreamContext._JSI.activity_check",
                                                           "JetStreamContext._JSI.check_flow_control_response"})
        reproduced = bool(bound) and bool(leaked_subs) and bool(leaked_task_names)
        msg = (f"get {outcome} after {elapsed:.2f}s (stall injected after {msgs_at_inject} KiB received); "
               f"3s after heal: tasks={tasks_after_heal}, leaked subs (sid, subject, pending)={leaked_subs}, "
               f"push_bound consumers={bound}; after nc.close tasks lingered {linger:.1f}s; "
               f"consumers after close={consumers_after_close}")
        return reproduced, msg


if __name__ == "__main__":
    run(main)
