"""NR-005 (near miss, NOT a finding): a fetch(1, timeout=None) whose pull
request is waiting on the consumer survives a disconnect/reconnect: the
server keeps the waiting request (same inbox, re-subscribed on reconnect), and
a message published after the reconnect is delivered to the still-pending
fetch.

Trigger: consumer num_waiting >= 1. Fault: proxy disabled 1 s, then enabled;
wait for the client's reconnect. Then publish one message.
Check: the fetch returns that message within 5 s.
Prints REPRODUCED (exit 1) if the fetch stays stuck.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, quiet_error_cb, quiet_nats_logs, run, wait_until  # noqa: E402

import nats  # noqa: E402


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        ojs = obs.jetstream()
        await ojs.add_stream(name="NR5", subjects=["nr5.>"])
        nc = await nats.connect(s.proxy_url, error_cb=quiet_error_cb, reconnect_time_wait=0.2)
        psub = await nc.jetstream().pull_subscribe("nr5.>", durable="d")
        fetch = asyncio.create_task(psub.fetch(1, timeout=None))
        fetch.add_done_callback(lambda t: t.cancelled() or t.exception())

        async def waiting():
            return (await ojs.consumer_info("NR5", "d")).num_waiting >= 1
        triggered = await wait_until(waiting, 3)
        s.set_proxy_enabled(False)
        await asyncio.sleep(1)
        s.set_proxy_enabled(True)
        reconnected = await wait_until(lambda: nc.is_connected and nc.stats["reconnects"] >= 1, 8)
        waiting_after = (await ojs.consumer_info("NR5", "d")).num_waiting
        await ojs.publish("nr5.x", b"after-reconnect")
        t0 = time.monotonic()
        done = await wait_until(lambda: fetch.done(), 5)
        took = time.monotonic() - t0
        got = [m.data for m in fetch.result()] if done and not fetch.exception() else None
        if not done:
            fetch.cancel()
        await nc.close()
        await obs.close()
        ok = triggered and reconnected and done and got == [b"after-reconnect"]
        return (not ok), (f"pull waiting={triggered}, reconnected={reconnected}, num_waiting after reconnect="
                          f"{waiting_after}, fetch {'returned %r in %.2fs' % (got, took) if done else 'STILL PENDING 5s later'}")


if __name__ == "__main__":
    run(main)
