"""KI-021 (nats-py 2.6.0 - 2.8.0, fixed in 2.9.0): ending a JetStream push subscription with
idle heartbeats the normal way (`sub.unsubscribe()`, which ObjectStore.get does for its
ordered consumer when it has read the object) leaves the subscription's heartbeat monitor
(`JetStreamContext._JSI.activity_check`) and flow-control task
(`_JSI.check_flow_control_response`) running, with the connection open and after it closes.

Run with the nats-py under test, e.g.
  .cache/targets/nats-py-2.8.0/bin/python known_issues/KI-021-*/repro.py   (reproduced)
  .cache/targets/nats-py-2.9.0/bin/python known_issues/KI-021-*/repro.py   (not reproduced)
(`harness run --client nats-py==2.8.0 …` creates those virtualenvs.)

Flows, no fault at all: (A) ObjectStore.get of a one-chunk object; (B) an ordered push
subscription (`js.subscribe(ordered_consumer=True)`), 5 messages iterated, then
`sub.unsubscribe()`. Check: 1 s after the get returned / the unsubscribe, and 1 s after
`nc.close()`, no task of the subscription is left.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, new_tasks, quiet_error_cb, quiet_nats_logs, run, task_snapshot, wait_until  # noqa: E402

import nats  # noqa: E402

JSI = ("JetStreamContext._JSI.activity_check", "JetStreamContext._JSI.check_flow_control_response")


async def objectstore_get(s) -> tuple[list[str], list[str]]:
    nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
    js = nc.jetstream()
    obs = await js.object_store("KI021")
    baseline = task_snapshot()
    res = await obs.get("obj")
    assert len(res.data) == 1024
    await asyncio.sleep(1)
    open_left = [t for t in new_tasks(baseline) if t in JSI]
    await nc.close()
    await asyncio.sleep(1)
    return open_left, [t for t in new_tasks(baseline) if t in JSI]


async def ordered_unsubscribe(s) -> tuple[list[str], list[str]]:
    nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
    js = nc.jetstream()
    baseline = task_snapshot()
    sub = await js.subscribe("ki021.>", ordered_consumer=True)
    seen = 0
    for _ in range(5):
        await sub.next_msg(timeout=5)
        seen += 1
    await sub.unsubscribe()
    await asyncio.sleep(1)
    open_left = [t for t in new_tasks(baseline) if t in JSI]
    await nc.close()
    await asyncio.sleep(1)
    return open_left, [t for t in new_tasks(baseline) if t in JSI]


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        ojs = obs.jetstream()
        store = await ojs.create_object_store("KI021")
        await store.put("obj", b"x" * 1024)
        await ojs.add_stream(name="KI021S", subjects=["ki021.>"])
        for i in range(5):
            await ojs.publish("ki021.m", b"m%d" % i)
        a = await objectstore_get(s)
        b = await ordered_unsubscribe(s)
        await obs.close()
        from importlib.metadata import version as dist_version
        reproduced = any(a) or any(b)
        return reproduced, (f"nats-py {dist_version('nats-py')}: (A) ObjectStore.get returned, 1 s later tasks {a[0]}, "
                            f"1 s after nc.close() {a[1]}; (B) ordered sub unsubscribed, 1 s later tasks {b[0]}, "
                            f"1 s after nc.close() {b[1]}")


if __name__ == "__main__":
    run(main)
