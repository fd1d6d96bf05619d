"""NR-001 (near miss, NOT a finding): pull fetch() honours its timeout under
stalls and disconnects, leaves no task behind and the connection recovers.

Flow: js.pull_subscribe (durable) + fetch(batch, timeout=2) on an empty
stream, batch in (1, 5).
Faults, injected while the pull request is waiting on the consumer
(observer: consumer num_waiting >= 1): proxy disabled; reset_peer (RST on the
next downstream bytes, forced by the observer publishing to a subject the
client subscribes to); bandwidth 0 downstream (stall, heals); timeout toxic
downstream (stall that ends in a close when removed). Plus nc.close() during
the fetch.
Checks: fetch ends within timeout + 0.5 s; no new task after the fetch other
than the connection's own machinery (read loop, flusher, pinger, an ongoing
reconnect); after heal js.account_info() succeeds within 6 s; nothing left
after nc.close().
Prints REPRODUCED (exit 1) if any check fails.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import CONN_TASKS, Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402

TIMEOUT = 2.0


async def case(s, obs, fault, batch, idx):
    stream = f"NR1_{idx}"
    ojs = obs.jetstream()
    await ojs.add_stream(name=stream, subjects=[f"nr1.{idx}.>"])
    nc = await nats.connect(s.proxy_url, error_cb=quiet_error_cb, reconnect_time_wait=0.2,
                            max_reconnect_attempts=-1)
    js = nc.jetstream(timeout=1)
    await nc.subscribe(f"noise.{idx}", cb=_noop)
    psub = await js.pull_subscribe(f"nr1.{idx}.>", durable="d")
    await js.account_info()
    baseline = task_snapshot()
    fetch = asyncio.create_task(psub.fetch(batch, timeout=TIMEOUT))

    async def waiting():
        return (await ojs.consumer_info(stream, "d")).num_waiting >= 1
    triggered = await wait_until(waiting, 3)
    t0 = time.monotonic()
    if fault == "disable":
        s.set_proxy_enabled(False)
    elif fault == "reset_peer":
        s.add_toxic("f", "reset_peer", "downstream", timeout=0)
        await obs.publish(f"noise.{idx}", b"x")
    elif fault == "bandwidth0":
        s.add_toxic("f", "bandwidth", "downstream", rate=0)
    elif fault == "timeout":
        s.add_toxic("f", "timeout", "downstream", timeout=0)
    elif fault == "nc.close":
        await nc.close()
    try:
        await asyncio.wait_for(asyncio.shield(fetch), TIMEOUT + 5)
        outcome = "returned"
    except asyncio.TimeoutError:
        outcome = "TimeoutError" if fetch.done() else "HUNG"
    except Exception as e:
        outcome = type(e).__name__
    took = time.monotonic() - t0
    leaked = [t for t in new_tasks(baseline) if t not in CONN_TASKS]
    await asyncio.sleep(0.3)
    if fault == "disable":
        s.set_proxy_enabled(True)
    elif fault != "nc.close":
        s.remove_toxic("f")
    healthy, t_heal = None, 0.0
    if fault != "nc.close":
        t1 = time.monotonic()

        async def ok():
            try:
                await js.account_info()
                return True
            except Exception:
                return False
        healthy = await wait_until(ok, 6, 0.1)
        t_heal = time.monotonic() - t1
        await nc.close()
    await asyncio.sleep(0.1)
    after_close = new_tasks(baseline)
    bad = bool(not triggered or outcome == "HUNG" or took > TIMEOUT + 0.5 or leaked or healthy is False
           or after_close)
    line = (f"{fault}/batch={batch}: fetch {outcome} in {took:.2f}s, leaked={leaked}, "
            f"healthy={healthy} ({t_heal:.2f}s), after close={after_close}")
    return bad, line


async def _noop(msg):
    pass


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        lines, bad_any, i = [], False, 0
        for fault in ("disable", "reset_peer", "bandwidth0", "timeout", "nc.close"):
            for batch in (1, 5):
                i += 1
                bad, line = await case(s, obs, fault, batch, i)
                bad_any |= bad
                lines.append(("!! " if bad else "") + line)
        await obs.close()
        return bad_any, "; ".join(lines)


if __name__ == "__main__":
    run(main)
