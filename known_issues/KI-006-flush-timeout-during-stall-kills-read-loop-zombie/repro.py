"""KI-006: a flush()/rtt() that times out during a stall leaves a cancelled
future in nc._pongs; when the stall heals, the late PONG is matched to that
cancelled future, future.set_result() raises InvalidStateError inside the read
loop, the read loop logs it and exits. The connection then says
is_connected=True but never reads again: a zombie (until the client's own
ping timer declares it stale: ping_interval x (max_outstanding_pings + 1),
6 minutes with the defaults).

Phase A (control, same connection): stall (bandwidth rate=0 downstream) with
no flush; a request times out (evidence of the stall); heal -> healthy.
Phase B: stall; nc.flush(timeout=1) -> FlushTimeoutError; heal.
Phase C: the same with the other stall kind, the server paused: a second
connection straight to the server; SIGSTOP nats-server; nc.flush(timeout=1);
SIGCONT.
Check after heal (8 s): js.account_info() / nc.request() must succeed again.
"""
import asyncio
import logging
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _servers import Servers, quiet_error_cb, run  # noqa: E402

import nats  # noqa: E402

logged = []


class Capture(logging.Handler):
    def emit(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        logged.append(f"{record.getMessage()}: {type(exc).__name__ if exc else ''}")


async def recovers(nc, js, within):
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        try:
            await js.account_info()
            await nc.request("$JS.API.INFO", b"", timeout=1)
            return True, time.monotonic() - t0
        except Exception:
            await asyncio.sleep(0.1)
    return False, time.monotonic() - t0


async def main():
    lg = logging.getLogger("nats")
    lg.addHandler(Capture())
    lg.propagate = False
    with Servers(toxiproxy=True) as s:
        nc = await nats.connect(s.proxy_url, error_cb=quiet_error_cb)  # default ping_interval=120s, 2 outstanding
        js = nc.jetstream(timeout=1)
        await js.account_info()

        # Phase A: control, a stall without flush
        s.add_toxic("stall", "bandwidth", "downstream", rate=0)
        try:
            await nc.request("$JS.API.INFO", b"", timeout=1)
            evidence_a = False
        except nats.errors.TimeoutError:
            evidence_a = True
        s.remove_toxic("stall")
        ok_a, t_a = await recovers(nc, js, 5)

        # Phase B: the same, but the application calls flush(timeout=1) during the stall
        s.add_toxic("stall", "bandwidth", "downstream", rate=0)
        try:
            await nc.flush(timeout=1)
            flush_b = "returned"
        except Exception as e:
            flush_b = type(e).__name__
        s.remove_toxic("stall")
        ok_b, t_b = await recovers(nc, js, 8)
        read_loop_done = nc._reading_task.done()
        connected = nc.is_connected
        await nc.close()

        # Phase C: server paused instead of a toxic
        nc2 = await nats.connect(s.nats_url, error_cb=quiet_error_cb)
        js2 = nc2.jetstream(timeout=1)
        await js2.account_info()
        os.kill(s.nats_proc.pid, signal.SIGSTOP)
        try:
            try:
                await nc2.flush(timeout=1)
                flush_c = "returned"
            except Exception as e:
                flush_c = type(e).__name__
        finally:
            os.kill(s.nats_proc.pid, signal.SIGCONT)
        ok_c, t_c = await recovers(nc2, js2, 8)
        c_state = f"is_connected={nc2.is_connected}, read loop task done={nc2._reading_task.done()}"
        await nc2.close()

        msg = (f"control (stall, no flush): stall evidenced={evidence_a}, healthy after heal={ok_a} in {t_a:.2f}s; "
               f"stall + nc.flush(1) -> {flush_b}; after heal: healthy={ok_b} within {t_b:.1f}s, "
               f"is_connected={connected}, read loop task done={read_loop_done}; "
               f"server SIGSTOP + nc.flush(1) -> {flush_c}; after SIGCONT: healthy={ok_c} within {t_c:.1f}s, "
               f"{c_state}; nats logger: {logged}")
        return (ok_a and not ok_b and connected and read_loop_done), msg


if __name__ == "__main__":
    run(main)
