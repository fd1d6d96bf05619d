"""KI-011: kv.keys() that fails with its own TimeoutError during a stall
leaks its internal watcher: a callback subscription (nc._subs + a
Subscription._wait_for_msgs task), the two _JSI tasks, and a push-bound
ordered consumer on the KV stream for the life of the connection.

Flow: kv.keys() on a 20-key bucket, js timeout 1 s (no caller timeout).
Fault: a 300 ms latency toxic downstream (background, makes the steps
observable), then a stall (bandwidth rate 0 downstream) injected once the
watcher's subscription exists in nc._subs and >= 2 further messages
(its consumer-info reply / first entries) have arrived, i.e. while keys() is
waiting for its own consumer_info() reply (kv.py:452). Healed after keys()
raised.
Check, 3 s after the heal with the connection open: tasks, nc._subs,
push-bound consumers on KV_<bucket>. If keys() succeeded, the stall missed
its window (inconclusive attempt); up to 3 attempts.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402


async def attempt(s, ojs, n):
    bucket = f"ki011_{n}"
    kvo = await ojs.create_key_value(bucket=bucket)
    for i in range(20):
        await kvo.put(f"k{i}", b"v")

    nc = await nats.connect(s.proxy_url, error_cb=quiet_error_cb)
    js = nc.jetstream(timeout=1)
    kv = await js.key_value(bucket)
    await js.account_info()
    baseline = task_snapshot()
    subs_before = set(nc._subs)
    s.add_toxic("lat", "latency", "downstream", latency=300)

    async def inject():
        await wait_until(lambda: set(nc._subs) - subs_before, 5, 0.0005)
        m0 = nc.stats["in_msgs"]
        await wait_until(lambda: nc.stats["in_msgs"] - m0 >= 2, 5, 0.0005)
        s.add_toxic("stall", "bandwidth", "downstream", rate=0)

    trig = asyncio.create_task(inject())
    t0 = time.monotonic()
    try:
        keys = await asyncio.wait_for(kv.keys(), 10)
        outcome = f"returned {len(keys)} keys"
    except asyncio.TimeoutError:
        outcome = "raised TimeoutError" if time.monotonic() - t0 < 9 else "hung (10s bound)"
    except Exception as e:
        outcome = f"raised {type(e).__name__}"
    took = time.monotonic() - t0
    await trig
    s.remove_toxic("stall")
    s.remove_toxic("lat")
    if outcome.startswith("returned"):
        await nc.close()
        return None, f"attempt {n}: stall missed the window (kv.keys() {outcome} in {took:.2f}s), inconclusive"
    await asyncio.sleep(3)
    tasks = new_tasks(baseline)
    subs = [(sid, nc._subs[sid].subject) for sid in set(nc._subs) - subs_before]
    bound = [(c.name, c.config.inactive_threshold) for c in await ojs._jsm.consumers_info(f"KV_{bucket}")
             if c.push_bound]
    await nc.close()
    t_close = time.monotonic()
    await wait_until(lambda: not new_tasks(baseline), 12)
    linger = time.monotonic() - t_close
    reproduced = bool(subs) and bool(bound) and "JetStreamContext._JSI.activity_check" in tasks
    return reproduced, (f"attempt {n}: kv.keys() {outcome} after {took:.2f}s; 3s after heal: tasks={tasks}, "
                        f"leaked subs={subs}, push_bound consumers (name, inactive_threshold)={bound}; "
                        f"after nc.close tasks lingered {linger:.1f}s")


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        ojs = obs.jetstream()
        notes = []
        result = None
        for n in range(1, 4):  # the stall must land in a ~300 ms window; a miss is inconclusive, retried
            result, note = await attempt(s, ojs, n)
            notes.append(note)
            if result is not None:
                break
        await obs.close()
        if result is None:
            raise RuntimeError("stall never landed in the window: " + "; ".join(notes))
        return result, "; ".join(notes)


if __name__ == "__main__":
    run(main)
