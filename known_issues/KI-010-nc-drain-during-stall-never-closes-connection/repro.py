"""KI-010: nc.drain() during a stall longer than the flush timeout (10 s)
raises FlushTimeoutError after ~20 s and never closes the connection: it
stays in DRAINING_PUBS with Client._flusher / Client._ping_interval alive and
the connection still registered on the server.

Control: nc.drain() with no stall closes the connection at once.
Flow: a connection (named, so the observer can find it in /connz) with one
core subscription; nc.drain().
Fault: Toxiproxy bandwidth rate 0 downstream, in place before nc.drain() is
called (evidence: a request times out), healed 12 s later.
Check, 2 s after nc.drain() has returned/raised: nc.is_closed, client tasks,
server /connz.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, quiet_nats_logs, run, task_snapshot  # noqa: E402

import nats  # noqa: E402

HEAL_AFTER = 12


async def flow(s, name, stall):
    errors = []

    async def error_cb(e):
        errors.append(type(e).__name__)

    nc = await nats.connect(s.proxy_url, name=name, error_cb=error_cb)
    await nc.subscribe(f"ki010.{name}")
    await nc.flush()
    healer = None
    evidence = None
    if stall:
        s.add_toxic("stall", "bandwidth", "downstream", rate=0)
        try:
            await nc.request("ki010.nobody", b"", timeout=0.5)
            evidence = False
        except Exception:
            evidence = True  # no-responders or timeout never arrive: stalled

        async def heal():
            await asyncio.sleep(HEAL_AFTER)
            s.remove_toxic("stall")
        healer = asyncio.create_task(heal())
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(nc.drain(), 40)
        outcome = "returned"
    except Exception as e:
        outcome = f"raised {type(e).__name__}"
    took = time.monotonic() - t0
    if healer:
        await healer
    await asyncio.sleep(2)
    conns = [c for c in s.monitor("/connz").get("connections", []) if c.get("name") == name]
    live_client_tasks = sorted(n for n in task_snapshot().values() if n.startswith(("Client.", "Subscription.")))
    state = dict(outcome=outcome, took=took, closed=nc.is_closed, status=nc._status, errors=errors,
                 evidence=evidence, tasks=live_client_tasks, on_server=len(conns))
    if not nc.is_closed:
        await nc.close()  # clean up what drain left
    return state


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        ctl = await flow(s, "ki010-control", stall=False)
        bad = await flow(s, "ki010-stall", stall=True)
        parts = []
        for n, r in (("control", ctl), ("stall", bad)):
            parts.append(f"{n}: nc.drain() {r['outcome']} after {r['took']:.1f}s, 2s later is_closed={r['closed']} "
                         f"(status {r['status']}), client tasks={r['tasks']}, connection on server={r['on_server']}, "
                         f"error_cb={r['errors']}" + (f", stall evidenced={r['evidence']}" if r['evidence'] is not None else ""))
        reproduced = ctl["closed"] and not bad["closed"] and bad["on_server"] >= 1
        return reproduced, "; ".join(parts)


if __name__ == "__main__":
    run(main)
