"""The agent's side of the protocol: one client, one flow, events and snapshots."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import random
import signal
import sys
import time
import traceback
import weakref
from typing import Any

import nats

from harness.agent import collect
from harness.agent.context import FlowContext
from harness.flows import FLOWS, IMPORT_FAILURES, Names, NotApplicable, load_flow_modules, missing_api

HEARTBEAT = 0.1  # seconds between heartbeats; the runner flags a gap far larger than this


class Agent:
    def __init__(self, out: Any) -> None:
        self.out = out
        self.t0 = time.monotonic()
        self.nc: Any = None
        self.ctx: FlowContext | None = None
        self.flow_task: asyncio.Task | None = None
        self.labels: weakref.WeakKeyDictionary[asyncio.Task, str] = weakref.WeakKeyDictionary()

    # -- output --------------------------------------------------------------
    def write(self, msg: dict[str, Any]) -> None:
        self.out.write(json.dumps(msg, default=str) + "\n")
        self.out.flush()

    def emit(self, ev: str, **kw: Any) -> None:
        self.write({"ev": ev, "t": round(time.monotonic() - self.t0, 4), **kw})

    def own(self, task: asyncio.Task, role: str) -> asyncio.Task:
        self.labels[task] = role
        return task

    # -- main loop -------------------------------------------------------------
    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        collect.install_task_factory(loop)
        self.own(asyncio.current_task(), "agent")  # type: ignore[arg-type]
        self.own(loop.create_task(self.heartbeat()), "agent")
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self.emit("hello", pid=os.getpid(), nats_py=_nats_version(), **hello_target())
        while True:
            line = await reader.readline()
            if not line:
                return  # runner gone
            req = json.loads(line)
            t = loop.create_task(self.handle(req))
            self.own(t, "agent")
            if req.get("op") == "exit":
                await t
                return

    async def heartbeat(self) -> None:
        # Stamped with this host's monotonic clock and the process's CPU time: a blocked loop is
        # a gap between two heartbeats as *emitted*, whenever the runner gets to read them. And
        # with the time the loop's thread has waited for a CPU (`q`): the part of a gap that a
        # busy machine, not the agent, caused (the loop check judges the rest).
        while True:
            hb = {"ev": "hb", "m": time.monotonic(), "c": time.process_time()}
            q = run_queue_wait()
            if q is not None:
                hb["q"] = q
            self.write(hb)
            await asyncio.sleep(HEARTBEAT)

    async def handle(self, req: dict[str, Any]) -> None:
        op = req.get("op")
        try:
            reply = await getattr(self, f"op_{op}")(req)
            self.write({"re": req["id"], "ok": True, **(reply or {})})
        except Exception as e:
            self.write(
                {"re": req["id"], "ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
            )

    # -- operations -------------------------------------------------------------
    async def op_connect(self, req: dict[str, Any]) -> dict[str, Any]:
        async def disconnected() -> None:
            self.emit("conn", state="disconnected")

        async def reconnected() -> None:
            self.emit("conn", state="reconnected")

        async def closed() -> None:
            self.emit("conn", state="closed")

        async def error(e: Exception) -> None:
            self.emit("conn", state="error", error=f"{type(e).__name__}: {e}")

        self.nc = await nats.connect(
            **req["options"],
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            closed_cb=closed,
            error_cb=error,
        )
        return {}

    async def op_start(self, req: dict[str, Any]) -> dict[str, Any]:
        spec = FLOWS[req["flow"]]
        self.ctx = FlowContext(self, self.nc, Names(req["tag"]), dict(req["params"]), req.get("barrier", ""), req.get("deadline"))
        self.flow_task = self.own(asyncio.get_running_loop().create_task(self.run_flow(spec)), "flow")
        return {}

    async def run_flow(self, spec: Any) -> None:
        t = time.monotonic()
        try:
            result = await spec.run(self.ctx)
            self.emit("outcome", status="ok", result=result, duration=round(time.monotonic() - t, 4), **self._ledger())
        except asyncio.CancelledError:
            self.emit("outcome", status="cancelled", duration=round(time.monotonic() - t, 4), **self._ledger())
            raise
        except NotApplicable as e:
            self.emit("outcome", status="not_applicable", message=str(e), duration=round(time.monotonic() - t, 4))
        except BaseException as e:
            self.emit(
                "outcome", status="error", exc_type=f"{type(e).__module__}.{type(e).__qualname__}",
                message=str(e)[:500], duration=round(time.monotonic() - t, 4), **self._ledger(),
            )

    def _ledger(self) -> dict[str, Any]:
        """The flow's delivery ledger summary, for the outcome event (only if it saw deliveries)."""
        out: dict[str, Any] = {}
        if self.ctx is not None and self.ctx.ledger:
            out["deliveries"] = self.ctx.ledger.summary()
        if self.ctx is not None and self.ctx.continuation:
            out["continuation"] = self.ctx.continuation.summary()
        return out

    async def op_release(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.ctx is not None
        self.ctx.release()
        return {}

    async def op_finish(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.ctx is not None
        return {"hooks": len(self.ctx._finish_hooks), "hook_errors": await self.ctx.finish()}

    async def op_action(self, req: dict[str, Any]) -> dict[str, Any]:
        """A client-side drain fault: act on the flow's subscription or connection."""
        name = req["name"]
        sub = self.ctx.subscription if self.ctx else None
        if name in ("sub_drain", "unsubscribe") and sub is None:
            raise RuntimeError("the flow tracks no subscription (ctx.track) to act on")
        if name in CANCELS:
            return await self.cancel_waiting(name, req)
        t = time.monotonic()
        if name == "sub_drain":
            await sub.drain()
        elif name == "unsubscribe":
            await sub.unsubscribe()
        elif name == "nc_drain":
            await self.nc.drain()
        elif name == "close":
            await self.nc.close()
        else:
            raise ValueError(f"unknown action {name}")
        return {"took": round(time.monotonic() - t, 4)}

    async def cancel_waiting(self, name: str, req: dict[str, Any]) -> dict[str, Any]:
        """The cancel family: give up on the flow's waiting call (`ctx.waiting`) `cancels` times
        in a row, each once the flow waits again: cancel its task, or put a deadline `after`
        seconds away on it. Returns once each cancelled call ended (or `bound` passed)."""
        ctx = self.ctx
        if ctx is None:
            raise RuntimeError("no flow started")
        n, after, bound = int(req.get("cancels", 1)), float(req.get("after", 0.2)), float(req.get("bound", 10.0))
        t = time.monotonic()
        calls: list[dict[str, Any]] = []
        ctx.cancels_left = n  # the flow counts them down as its calls end cancelled (Waiting.result)
        for i in range(n):
            flow = self.flow_task
            w = await _first(lambda: next((w for w in ctx.waits.values() if not w.how), None)
                             or (flow is not None and flow.done() and _ENDED), bound)
            if w is None or w is _ENDED:  # nothing to cancel (the flow ended, or never waited)
                ctx.cancels_left = 0
                return {"took": round(time.monotonic() - t, 4), "calls": calls, "none_waiting": True}
            if name == "cancel_race":  # a message on its way as the caller gives up
                rid = f"race-{i}"
                ctx.continuation.publish([rid])
                seen = self.nc.stats["in_msgs"]
                await self.nc.publish(f"{ctx.names.subject}.m", rid.encode())
                await self.nc.flush()
                # Until the client has read it (a loaded machine delays the round trip past any
                # fixed number of loop turns: the cancels then all landed before it, 1 run in 2
                # under a -n 4 gate), then a few loop turns: around its hand-over to the call.
                end = time.monotonic() + 1.0
                while self.nc.stats["in_msgs"] == seen and time.monotonic() < end:
                    await asyncio.sleep(0)  # every loop turn: the read loop's dispatch is one
                for _ in range(random.randint(0, int(req.get("ticks", 6)))):
                    await asyncio.sleep(0)
            if name == "cancel_deadline":
                w.expire(after)
            else:
                w.cancel()
            self.emit("cancel issued", label=w.label, kind=CANCELS[name], age=round(time.monotonic() - w.t0, 4))
            ended = await _first(lambda: w.task.done() or None, bound)
            calls.append({"label": w.label, "ended": bool(ended)})
            if not ended:  # the call ignored its cancellation: the flow stays pending (iterators)
                break
        ctx.cancels_left = 0  # a call that returned a value instead left one unspent
        return {"took": round(time.monotonic() - t, 4), "calls": calls}

    async def op_cancel_flow(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.flow_task and not self.flow_task.done():
            self.flow_task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(self.flow_task), req.get("timeout", 2.0))
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):
                pass
        return {"done": bool(self.flow_task and self.flow_task.done())}

    async def op_pending(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"pending": self.ctx.pending_calls() if self.ctx else []}

    async def op_snapshot(self, req: dict[str, Any]) -> dict[str, Any]:
        nc = self.nc
        return {
            "tasks": collect.tasks(self.labels),
            "subs": collect.subscriptions(nc),
            "pending": self.ctx.pending_calls() if self.ctx else [],
            "proc": collect.process(),
            "conn": {
                "connected": bool(nc and nc.is_connected),
                "closed": bool(nc and nc.is_closed),
                "reconnecting": bool(nc and nc.is_reconnecting),
                "cid": nc.client_id if nc is not None else None,  # the server's id of the live connection
            },
            "flow_done": bool(self.flow_task and self.flow_task.done()),
        }

    async def op_fds(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"fds": {str(k): v for k, v in collect.open_fds().items()}}

    async def op_memory(self, req: dict[str, Any]) -> dict[str, Any]:
        """A soak's per-round sample: traced memory, gc objects, tasks, subscriptions, RSS."""
        return collect.memory(self.nc, start_tracing=bool(req.get("start_tracing")))

    async def op_probe(self, req: dict[str, Any]) -> dict[str, Any]:
        """Recovery: a request round trip and a JetStream API call on the same connection."""
        t = time.monotonic()
        timeout = req.get("bound", 1.0)
        await self.nc.request(req["subject"], b"ping", timeout=timeout)
        rtt = time.monotonic() - t
        await asyncio.wait_for(self.nc.jetstream().account_info(), timeout)
        return {"rtt": round(rtt, 4), "total": round(time.monotonic() - t, 4)}

    async def op_close(self, req: dict[str, Any]) -> dict[str, Any]:
        t = time.monotonic()
        if self.nc is not None and not self.nc.is_closed:
            await asyncio.wait_for(self.nc.close(), req.get("timeout", 5.0))
        return {"took": round(time.monotonic() - t, 4)}

    async def op_exit(self, req: dict[str, Any]) -> dict[str, Any]:
        return {}


_ENDED = object()
CANCELS = {"cancel_task": "task", "cancel_deadline": "deadline", "cancel_repeat": "task", "cancel_race": "task"}  # action -> how


async def _first(probe: Any, timeout: float, every: float = 0.005) -> Any:
    """`probe()`'s first truthy value within `timeout` seconds (None if none)."""
    end = time.monotonic() + timeout
    while True:
        v = probe()
        if v or time.monotonic() >= end:
            return v or None
        await asyncio.sleep(every)


def run_queue_wait() -> float | None:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat), or None."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def hello_target() -> dict[str, Any]:
    """What the agent tells the runner about the client it hosts (same keys for every agent):
    implementation and version, where it was imported from, and the flows it cannot run."""
    not_applicable = {name: why for name, spec in FLOWS.items() if (why := missing_api(spec))}
    return {
        "client": {"impl": "nats-py", "version": _nats_version(), "path": os.path.dirname(nats.__file__)},
        "not_applicable": not_applicable,
        "failed_modules": dict(IMPORT_FAILURES),
    }


def _nats_version() -> str:
    try:
        from importlib.metadata import version

        return version("nats-py")
    except Exception:
        return "?"


def main() -> None:
    # The protocol owns the real stdout; anything the client or a flow prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    # Stacks of every thread on SIGUSR1, even while the event loop is blocked.
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner ends the agent, not the terminal's Ctrl-C
    extra = tuple(m for m in os.environ.get("NATS_CHAOS_FLOW_MODULES", "").split(",") if m)
    load_flow_modules(extra)
    agent = Agent(out)
    asyncio.run(agent.main())
