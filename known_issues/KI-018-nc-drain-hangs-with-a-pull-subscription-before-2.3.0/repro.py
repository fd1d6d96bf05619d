"""KI-018 (nats-py 2.0.0 - 2.2.0, fixed in 2.3.0): nc.drain() with a pull subscription
open does not return: it waits out drain_timeout, and the subscription's drain task and its
inbox subscription stay behind.

Run with the nats-py under test, e.g.
  .cache/targets/nats-py-2.2.0/bin/python known_issues/KI-018-*/repro.py   (reproduced)
  .cache/targets/nats-py-2.3.0/bin/python known_issues/KI-018-*/repro.py   (not reproduced)
(`harness run --client nats-py==2.2.0 …` creates those virtualenvs.)

Flow: a durable pull consumer with 5 messages; pull_subscribe (bound to the durable),
fetch(5), ack each (flushed), then nc.drain() as an application shutting down does.
Check: drain returns within 3 s (it has nothing to wait for: no message is in flight).
Control: the same flow ended by nc.close().
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot  # noqa: E402

import nats  # noqa: E402
from nats.js.api import ConsumerConfig, AckPolicy  # noqa: E402

BOUND = 3.0


async def case(s, stream, action):
    nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb, drain_timeout=8)
    js = nc.jetstream()
    baseline = task_snapshot()
    psub = await js.pull_subscribe(f"{stream.lower()}.>", durable="worker", stream=stream)
    msgs = await psub.fetch(5, timeout=5)
    for m in msgs:
        await m.ack()
    await nc.flush()
    t0 = time.monotonic()
    call = asyncio.ensure_future(nc.drain() if action == "drain" else nc.close())
    await asyncio.wait([call], timeout=BOUND)  # not cancelled: we look at it while it waits
    hung = not call.done()
    outcome = f"STILL PENDING {BOUND:.0f}s after it was called" if hung else f"returned in {time.monotonic() - t0:.2f}s"
    subs = sorted(sub.subject for sub in getattr(nc, "_subs", {}).values())
    tasks = new_tasks(baseline, ignore=("Client.drain", "Client.close"))  # minus our own call
    if hung:
        t1 = time.monotonic()
        await asyncio.wait([call], timeout=10)
        outcome += f" (then returned after another {time.monotonic() - t1:.1f}s: drain_timeout is 8s)" if call.done() else " (and 10s later)"
    if not nc.is_closed:
        await nc.close()
    return hung, f"nc.{action}(): {outcome}; subscriptions left {subs}; new tasks {tasks}"


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        js = obs.jetstream()
        out = {}
        for i, action in enumerate(("drain", "close")):
            stream = f"KI014{i}"
            await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
            await js.add_consumer(stream, ConsumerConfig(durable_name="worker", ack_policy=AckPolicy.EXPLICIT))
            for n in range(5):
                await js.publish(f"{stream.lower()}.m", str(n).encode())
            out[action] = await case(s, stream, action)
        await obs.close()
        from importlib.metadata import version as dist_version
        version = dist_version("nats-py")
        reproduced = out["drain"][0] and not out["close"][0]
        return reproduced, f"nats-py {version}: " + "; ".join(v[1] for v in out.values())


if __name__ == "__main__":
    run(main)
