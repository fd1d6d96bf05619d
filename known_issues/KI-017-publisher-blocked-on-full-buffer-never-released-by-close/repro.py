"""KI-017: a publisher blocked on a full pending buffer is never released by nc.close().

nc.publish() waits for the flusher once the client's pending buffer is full
(Client._flush_pending(force_flush=True) -> wait_for(future, flush_timeout), and
flush_timeout is None by default). The future is queued for the flusher task; close()
cancels the flusher, and the futures still queued behind the one it was writing are never
resolved: the publish call stays blocked after close() has returned, for ever.

Flow: a publisher task sends 4 KiB messages (up to 20 000) through Toxiproxy.
Fault: bandwidth rate 0 upstream (client -> server); the publisher blocks (out_msgs still
for 0.5 s). Then nc.close() (blocked while the stall lasts: KI-012), the stall is healed
and close() returns. Check: the publisher must end (ConnectionClosedError, or return)
within 3 s of close() returning.
Control: the same publisher blocked by the same stall, healed without close(): the
publisher resumes and finishes (the block itself is the documented flush_timeout=None).
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, await_chain, quiet_error_cb, quiet_nats_logs, run, wait_until  # noqa: E402

import nats  # noqa: E402

PAYLOAD = b"x" * 4096
COUNT = 20_000


async def publisher_blocked(nc, pub):
    last, still_since = -1, time.monotonic()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not pub.done():
        n = nc.stats["out_msgs"]
        if n != last:
            last, still_since = n, time.monotonic()
        elif time.monotonic() - still_since > 0.5:
            return True
        await asyncio.sleep(0.05)
    return False


async def case(s, close):
    nc = await nats.connect(s.proxy_url, error_cb=quiet_error_cb)
    await nc.flush()

    async def publish_many():
        for _ in range(COUNT):
            await nc.publish("ki014.x", PAYLOAD)

    s.add_toxic("stall", "bandwidth", "upstream", rate=0)
    pub = asyncio.create_task(publish_many())
    pub.add_done_callback(lambda t: t.cancelled() or t.exception())
    closing = None
    try:
        blocked = await publisher_blocked(nc, pub)
        sent = nc.stats["out_msgs"]
        if close:
            closing = asyncio.create_task(nc.close())
            await asyncio.sleep(1.0)
    finally:
        s.remove_toxic("stall")
    closed_in = None
    if closing is not None:
        await wait_until(lambda: closing.done(), 10, 0.01)
        closed_in = closing.done()
    t0 = time.monotonic()
    ended = await wait_until(lambda: pub.done(), 3 if close else 20, 0.01)
    took = time.monotonic() - t0
    chain = "" if ended else await_chain(pub)
    how = ""
    if ended:
        how = "returned" if not pub.cancelled() and pub.exception() is None else \
            ("cancelled" if pub.cancelled() else type(pub.exception()).__name__)
    else:
        pub.cancel()
    if not nc.is_closed:
        await nc.close()
    return dict(blocked=blocked, sent=sent, closed=closed_in, ended=ended, took=took, how=how, chain=chain,
                out=nc.stats["out_msgs"])


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        ctl = await case(s, close=False)
        bad = await case(s, close=True)
        msg = (f"control (stall healed, no close): publisher blocked={ctl['blocked']} after {ctl['sent']} msgs, "
               f"after heal it {ctl['how'] or 'did not end'} in {ctl['took']:.2f}s ({ctl['out']} msgs); "
               f"close during the stall: publisher blocked={bad['blocked']} after {bad['sent']} msgs, close() returned "
               f"after heal={bad['closed']}; 3s later the publisher "
               + (f"{bad['how']} after {bad['took']:.2f}s" if bad["ended"] else f"is STILL PENDING at {bad['chain']}"))
        reproduced = ctl["blocked"] and ctl["ended"] and bad["blocked"] and bad["closed"] and not bad["ended"]
        return reproduced, msg


if __name__ == "__main__":
    run(main)
