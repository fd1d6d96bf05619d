"""NR-002 (near miss, NOT a finding): ack flows and the single-message Get
flows honour their timeouts during a stall or a disconnect, leave no task
behind, and the connection serves requests again after the heal.

Calls, made while the fault is in effect (evidence: a request round trip
times out first): msg.ack_sync(timeout=1), msg.in_progress(), msg.nak(delay=1),
msg.ack(), msg.term(), kv.get(key) (direct get), js.get_msg(seq, direct=True),
js.get_msg(seq) (STREAM.MSG.GET), with js timeout 1 s.
Faults: bandwidth 0 downstream; bandwidth 0 upstream; proxy disabled.
Check: every call ends within its timeout + 0.5 s (TimeoutError is fine: the
point is that it does not hang); no task other than connection machinery
appears; js.account_info() succeeds within 6 s of the heal.
Prints REPRODUCED (exit 1) if any check fails.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import CONN_TASKS, Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402
from nats.js.api import ConsumerConfig  # noqa: E402


async def case(s, obs, fault, idx):
    ojs = obs.jetstream()
    stream = f"NR2_{idx}"
    await ojs.add_stream(name=stream, subjects=[f"nr2.{idx}.>"], allow_direct=True)
    kvo = await ojs.create_key_value(bucket=f"nr2kv{idx}")
    await kvo.put("k", b"v")
    for i in range(6):
        await ojs.publish(f"nr2.{idx}.x", b"m%d" % i)
    nc = await nats.connect(s.proxy_url, error_cb=quiet_error_cb, reconnect_time_wait=0.2,
                            max_reconnect_attempts=-1)
    js = nc.jetstream(timeout=1)
    psub = await js.pull_subscribe(f"nr2.{idx}.>", durable="d", config=ConsumerConfig(ack_wait=30))
    msgs = await psub.fetch(5, timeout=2)
    kv = await js.key_value(f"nr2kv{idx}")
    baseline = task_snapshot()

    if fault == "bandwidth0-down":
        s.add_toxic("f", "bandwidth", "downstream", rate=0)
    elif fault == "bandwidth0-up":
        s.add_toxic("f", "bandwidth", "upstream", rate=0)
    else:
        s.set_proxy_enabled(False)
    try:
        await nc.request("$JS.API.INFO", b"", timeout=0.5)
        evidence = False
    except Exception:
        evidence = True

    calls = [
        ("ack_sync(1)", lambda: msgs[0].ack_sync(timeout=1), 1),
        ("in_progress", lambda: msgs[1].in_progress(), 0),
        ("nak(delay=1)", lambda: msgs[2].nak(delay=1), 0),
        ("ack", lambda: msgs[3].ack(), 0),
        ("term", lambda: msgs[4].term(), 0),
        ("kv.get", lambda: kv.get("k"), 1),
        ("get_msg(direct)", lambda: js.get_msg(stream, seq=1, direct=True), 1),
        ("get_msg", lambda: js.get_msg(stream, seq=1), 1),
    ]
    results, bad = [], not evidence
    for name, fn, limit in calls:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(fn(), limit + 5)
            out = "ok"
        except asyncio.TimeoutError:
            out = "TimeoutError"
        except Exception as e:
            out = type(e).__name__
        took = time.monotonic() - t0
        if took > limit + 0.5:
            bad = True
            out = "!! " + out
        results.append(f"{name}={out}/{took:.2f}s")
    leaked = [t for t in new_tasks(baseline) if t not in CONN_TASKS]
    if fault == "proxy-disabled":
        s.set_proxy_enabled(True)
    else:
        s.remove_toxic("f")
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
    bad = bad or bool(leaked) or not healthy
    return bad, (f"{fault}: evidence={evidence}, {', '.join(results)}, leaked={leaked}, "
                 f"healthy after heal={healthy} ({t_heal:.2f}s)")


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        lines, bad_any = [], False
        for i, fault in enumerate(("bandwidth0-down", "bandwidth0-up", "proxy-disabled")):
            bad, line = await case(s, obs, fault, i)
            bad_any = bad_any or bad
            lines.append(("!! " if bad else "") + line)
        await obs.close()
        return bad_any, "; ".join(lines)


if __name__ == "__main__":
    run(main)
