"""KI-025: `kv.history(key)` (a watch with `include_history=True`) sometimes finds nothing
(NoKeysError) for a key that has revisions, and `kv.watch(key, include_history=True)` then
hands out the end-of-initial-values marker (None) before any of them.

Why (read from nats/js/kv.py, `KeyValue.watch`): after subscribing its ordered consumer the
watcher asks `consumer_info()`, and if that says `num_pending == 0` while the subscription
has received nothing yet, it declares the initial values done. The server counts a message as
delivered once its consumer has queued it for the client, so the consumer-info reply can reach
the client before the very messages it counts: pending 0, received 0, and the replay that
follows comes after the marker. (nats.go decides from the consumer's state at creation.)

One key with REVS revisions; history() asked again and again, one call at a time, as a
service answering requests would, for up to CALLS calls or BUDGET seconds. Reproduced if a
call came back short (NoKeysError or fewer entries) and the same call right after it
returned every revision (the key had them all the while).
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, quiet_error_cb, quiet_nats_logs, run  # noqa: E402

import nats  # noqa: E402
from nats.js.errors import NoKeysError  # noqa: E402

REVS, CALLS, BUDGET = 5, 20000, 40.0


async def main():
    quiet_nats_logs()
    with Servers(toxiproxy=False) as s:
        nc = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        kv = await nc.jetstream().create_key_value(bucket="KI025", history=REVS)
        for r in range(REVS):
            await kv.put("k", f"v{r}".encode())

        async def history() -> int:
            try:
                return len(await kv.history("k"))
            except NoKeysError:
                return 0

        loop = asyncio.get_running_loop()
        end = loop.time() + BUDGET
        calls = short = 0
        first = ""
        while calls < CALLS and loop.time() < end:
            calls += 1
            got = await history()
            if got != REVS:
                short += 1
                again = await history()
                first = first or f"call {calls}: {got} of {REVS} revisions, the next call {again} of {REVS}"
        # the key kept every revision all along: the short answers are the client's
        whole = any([await history() == REVS for _ in range(3)])
        await nc.close()
    v = __import__("importlib.metadata").metadata.version("nats-py")
    msg = f"nats-py {v}: {short} of {calls} history() calls came back short" + (f" (first: {first})" if first else "")
    if not whole:
        raise RuntimeError(f"the key no longer has its {REVS} revisions: {msg}")  # inconclusive
    return short > 0, msg


if __name__ == "__main__":
    run(main)
