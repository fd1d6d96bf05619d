"""KI-012: nc.close() does not return while the link towards the server is
stalled and outbound data is buffered: _close() ends with an unbounded
`await self._transport.drain()`. is_closed is already True, but the close()
call (and the caller awaiting it) stays blocked until the stall heals
(a dead peer without RST: until TCP gives up, minutes).

Flow: a publisher task sends 4 KiB messages (up to 20 000) on the connection.
Fault A: Toxiproxy bandwidth rate 0 *upstream* (client -> server).
Fault B: nats-server paused (SIGSTOP), connection direct to the server.
Trigger: the publisher is blocked (nc.stats["out_msgs"] has stopped growing
for 0.5 s). Then nc.close().
Check: close() must return within 5 s. Then heal (remove toxic / SIGCONT)
and measure when it returns. Control: the same publisher without a stall,
then close().
"""
import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, await_chain, quiet_error_cb, quiet_nats_logs, run, wait_until  # noqa: E402

import nats  # noqa: E402

PAYLOAD = b"x" * 4096


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


async def case(s, kind):
    url = s.nats_url if kind == "server-paused" else s.proxy_url
    nc = await nats.connect(url, error_cb=quiet_error_cb)
    await nc.flush()

    async def publish_many():
        for _ in range(20_000):
            await nc.publish("ki012.x", PAYLOAD)

    if kind == "bandwidth0-upstream":
        s.add_toxic("stall", "bandwidth", "upstream", rate=0)
    elif kind == "server-paused":
        os.kill(s.nats_proc.pid, signal.SIGSTOP)
    pub = asyncio.create_task(publish_many())
    pub.add_done_callback(lambda t: t.cancelled() or t.exception())
    try:
        blocked = await publisher_blocked(nc, pub) if kind != "control" else None
        if kind == "control":
            await wait_until(lambda: pub.done(), 20)
        sent = nc.stats["out_msgs"]
        t0 = time.monotonic()
        closing = asyncio.create_task(nc.close())
        returned = await wait_until(lambda: closing.done(), 5, 0.01)
        t_ret = time.monotonic() - t0
        chain = "" if returned else await_chain(closing)
        is_closed = nc.is_closed
    finally:
        if kind == "bandwidth0-upstream":
            s.remove_toxic("stall")
        elif kind == "server-paused":
            os.kill(s.nats_proc.pid, signal.SIGCONT)
    t_heal = time.monotonic()
    after = await wait_until(lambda: closing.done(), 10, 0.01)
    t_after = time.monotonic() - t_heal
    return dict(blocked=blocked, sent=sent, returned=returned, t=t_ret, chain=chain, is_closed=is_closed,
                after=after, t_after=t_after)


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=True) as s:
        res = {k: await case(s, k) for k in ("control", "bandwidth0-upstream", "server-paused")}
        parts = []
        for k, r in res.items():
            if r["returned"]:
                parts.append(f"{k}: {r['sent']} msgs sent, close() returned in {r['t']:.2f}s")
            else:
                parts.append(f"{k}: publisher blocked={r['blocked']} after {r['sent']} msgs; close() NOT returned "
                             f"5s later (is_closed={r['is_closed']}), blocked at {r['chain']}; after heal returned="
                             f"{r['after']} in {r['t_after']:.2f}s")
        stuck = [k for k in ("bandwidth0-upstream", "server-paused") if res[k]["blocked"] and not res[k]["returned"]]
        return bool(stuck) and res["control"]["returned"], "; ".join(parts)


if __name__ == "__main__":
    run(main)
