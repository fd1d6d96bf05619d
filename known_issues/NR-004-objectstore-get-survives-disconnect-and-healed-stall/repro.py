"""NR-004 (near miss, NOT a finding): ObjectStore.get (no caller timeout)
resumes across disconnects and healed stalls, returns the complete object,
and leaves no task / subscription / push-bound consumer behind.

Flow: obs.get of a 40 x 128 KiB object through the proxy.
Faults, injected once >= 5 chunks arrived (nc.stats["in_bytes"]) and healed
after `hold` seconds: bandwidth 0 downstream (3 s), proxy disabled (2 s),
reset_peer (1 s), limit_data (cut ~300 KB later, 1 s), timeout toxic (3 s,
ends in a close).
Check: get returns data identical to what was stored, within hold + 22 s
(recovery after a disconnect is heartbeat-driven, see below);
afterwards no new task other than connection machinery, no new entry in
nc._subs, no push-bound consumer on the OBJ_ stream.
Recovery is slow: after a disconnect the ordered consumer only resumes when
an idle heartbeat (every 5 s) reveals the sequence gap, or when the 2 x hb
activity check fires: measured 1.3-5.5 s after one cut, 20.2 s when
limit_data cut the connection twice (the reconnected link was cut again).
(get() blocks for as long as a stall lasts: it has no timeout parameter. If
the caller adds one, see KI-001. If the connection is closed, see KI-002.)
Prints REPRODUCED (exit 1) if any check fails.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import CONN_TASKS, Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402

CHUNK = 128 * 1024
DATA = os.urandom(CHUNK * 40)


async def case(s, ojs, fault, hold, idx):
    bucket = f"nr4b{idx}"
    await (await ojs.create_object_store(bucket)).put("big", DATA)
    nc = await nats.connect(s.proxy_url, error_cb=quiet_error_cb, reconnect_time_wait=0.2,
                            max_reconnect_attempts=-1)
    store = await nc.jetstream().object_store(bucket)
    baseline = task_snapshot()
    subs_before = set(nc._subs)
    bytes0 = nc.stats["in_bytes"]

    async def inject_and_heal():
        await wait_until(lambda: nc.stats["in_bytes"] - bytes0 >= 5 * CHUNK, 10, 0.0005)
        if fault == "bandwidth0":
            s.add_toxic("f", "bandwidth", "downstream", rate=0)
        elif fault == "disable":
            s.set_proxy_enabled(False)
        elif fault == "reset_peer":
            s.add_toxic("f", "reset_peer", "downstream", timeout=0)
        elif fault == "limit_data":
            s.add_toxic("f", "limit_data", "downstream", bytes=300_000)
        elif fault == "timeout":
            s.add_toxic("f", "timeout", "downstream", timeout=0)
        await asyncio.sleep(hold)
        if fault == "disable":
            s.set_proxy_enabled(True)
        else:
            s.remove_toxic("f")

    trig = asyncio.create_task(inject_and_heal())
    t0 = time.monotonic()
    try:
        res = await asyncio.wait_for(store.get("big"), hold + 22)
        outcome = "complete" if res.data == DATA else f"WRONG DATA {len(res.data)}/{len(DATA)}"
    except asyncio.TimeoutError:
        outcome = "HUNG"
    except Exception as e:
        outcome = type(e).__name__
    took = time.monotonic() - t0
    await trig
    await asyncio.sleep(0.5)
    leaked = [t for t in new_tasks(baseline) if t not in CONN_TASKS]
    subs = [nc._subs[sid].subject for sid in set(nc._subs) - subs_before]
    bound = [c.name for c in await ojs._jsm.consumers_info(f"OBJ_{bucket}") if c.push_bound]
    reconnects = nc.stats["reconnects"]
    await nc.close()
    bad = outcome != "complete" or bool(leaked) or bool(subs) or bool(bound)
    return bad, (f"{fault}({hold}s): get {outcome} in {took:.2f}s, reconnects={reconnects}, leaked={leaked}, "
                 f"subs={subs}, push_bound={bound}")


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        ojs = obs.jetstream()
        lines, bad_any = [], False
        for i, (fault, hold) in enumerate((("bandwidth0", 3), ("disable", 2), ("reset_peer", 1),
                                           ("limit_data", 1), ("timeout", 3))):
            bad, line = await case(s, ojs, fault, hold, i)
            bad_any = bad_any or bad
            lines.append(("!! " if bad else "") + line)
        await obs.close()
        return bad_any, "; ".join(lines)


if __name__ == "__main__":
    run(main)
