"""KI-002: ObjectStore.get returns a truncated object *without any error*
when the connection is closed (nc.close()) or drained (nc.drain()) while
the chunks are being transferred.

Flow: obs.get("big") of a 40 x 128 KiB object over a direct connection.
Fault: nc.close() (variant 1) / nc.drain() (variant 2), fired once >= 8
chunks have arrived at the client (observed via nc.stats["in_bytes"]).
Check: get() must raise (connection closed / incomplete object); it returns
an ObjectResult whose .data is shorter than info.size.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, quiet_error_cb, quiet_nats_logs, run, wait_until  # noqa: E402

import nats  # noqa: E402

CHUNK = 128 * 1024
NCHUNKS = 40


async def variant(s, action):
    nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
    store = await nc.jetstream().object_store("ki002")
    bytes0 = nc.stats["in_bytes"]

    async def fire_mid_transfer():
        await wait_until(lambda: nc.stats["in_bytes"] - bytes0 >= 8 * CHUNK, 10, 0.0005)
        got = (nc.stats["in_bytes"] - bytes0) // 1024
        await (nc.close() if action == "close" else nc.drain())
        return got

    trig = asyncio.create_task(fire_mid_transfer())
    t0 = time.monotonic()
    try:
        res = await asyncio.wait_for(store.get("big"), 20)
        outcome = ("returned", len(res.data), res.info.size)
    except Exception as e:
        outcome = (f"raised {type(e).__name__}", None, None)
    elapsed = time.monotonic() - t0
    got_kib = await trig
    if not nc.is_closed:
        await nc.close()
    return outcome, elapsed, got_kib


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        obs = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        await (await obs.jetstream().create_object_store("ki002")).put("big", os.urandom(CHUNK * NCHUNKS))
        results = {}
        for action in ("close", "drain"):
            results[action] = await variant(s, action)
        await obs.close()
        truncated = [a for a, ((kind, n, size), _, _) in results.items() if kind == "returned" and n < size]
        parts = []
        for a, ((kind, n, size), el, kib) in results.items():
            detail = f"{n} of {size} bytes" if kind == "returned" else ""
            parts.append(f"nc.{a}() after {kib} KiB received -> get {kind} {detail} in {el:.2f}s")
        return bool(truncated), "; ".join(parts) + f"; silently truncated for: {truncated}"


if __name__ == "__main__":
    run(main)
