"""FlowContext: what a flow sees of the harness while it runs inside the agent."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from harness.agent.ledger import Continuation, DeliveryLedger
from harness.flows import PENDING, CallCancelled, FlowGaveUp, Names

T = TypeVar("T")


class FlowContext:
    """Handed to a flow's `run(ctx)`: the client, names, params, and the harness's hooks."""

    def __init__(self, agent: Any, nc: Any, names: Names, params: dict, barrier: str, deadline: float | None = None) -> None:
        self._agent = agent
        self.nc = nc
        self.js = nc.jetstream()
        self.names = names
        self.params = params
        self._barrier = barrier
        self._released = asyncio.Event()
        self.subscription: Any = None
        self._finish_hooks: list[Callable[[], Any]] = []
        self.finish_requested = False
        self.pending: dict[int, dict[str, Any]] = {}
        self._seq = 0
        self.deadline = time.monotonic() + deadline if deadline else None  # the flow's own, set by the runner
        self.ledger = DeliveryLedger()
        # The cancel family (harness.faults.cancel): the waiting calls it can cancel, how many
        # more it will cancel (cancel.repeat), and what the flow did after (judged by the checks).
        self.waits: dict[int, Waiting] = {}
        self.cancels_left = 0
        self.continuation = Continuation()

    def check_deadline(self, progress: str) -> None:
        """Give up (FlowGaveUp) once the flow's own deadline has passed, saying how far it got."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise FlowGaveUp(f"gave up at its deadline with {progress}")

    async def checkpoint(self, name: str) -> None:
        """Mark a named point; if the scenario's trigger is this barrier, wait for release."""
        self._agent.emit("checkpoint", name=name)
        if name == self._barrier:
            await self._released.wait()

    def release(self) -> None:
        self._released.set()

    def track(self, sub: Any) -> None:
        """The subscription drain faults (sub.drain, unsubscribe) act on."""
        self.subscription = sub

    def on_finish(self, hook: Callable[[], Any]) -> None:
        """Register the flow's own terminal action (e.g. unsubscribe), run when the runner says so."""
        self._finish_hooks.append(hook)

    async def finish(self) -> list[str]:
        self.finish_requested = True
        errors = []
        for hook in self._finish_hooks:
            try:
                r = hook()
                if asyncio.iscoroutine(r):
                    await r
            except Exception as e:  # reported, not raised: the finding is the iterator's
                errors.append(f"{type(e).__name__}: {e}")
        return errors

    def terminal(self, what: str) -> None:
        """Mark the flow's own terminal event (e.g. `nc.drain()` at a worker's shutdown): every
        call it leaves pending, the drain included, must resolve within the stuck bound of it."""
        self._agent.emit("terminal", label=what)

    def received(self, ids: list[str]) -> None:
        """Report the message ids the flow has in hand (message accounting, quiescence)."""
        self._agent.emit("received", count=len(ids), ids=list(ids)[:1000])

    def delivered(self, msg: Any) -> None:
        """Account one JetStream delivery handed to the flow (stream seq and delivery count from
        its metadata): every Next/ack flow calls this for each message it gets (the `delivery` check).
        Metadata a client release cannot parse is counted apart: accounting never fails a flow."""
        try:
            md = msg.metadata
            consumer, seq, count = md.consumer, int(md.sequence.stream), int(md.num_delivered)
        except Exception as e:
            self.ledger.unreadable(f"{type(e).__name__}: {e}")
            return
        self.ledger.record(consumer, seq, count)

    def _enter(self, label: str) -> int:
        self._seq += 1
        task = asyncio.current_task()
        self.pending[self._seq] = {"label": label, "since": time.monotonic(), "task": id(task) if task else 0}
        return self._seq

    async def call(self, label: str, aw: Awaitable[T], timeout: float | None = None) -> T:
        """Await a client call, tracked as pending while it runs; `timeout` is the user's own deadline."""
        k = self._enter(label)
        try:
            if timeout is None:
                return await aw
            return await asyncio.wait_for(aw, timeout)
        finally:
            self.pending.pop(k, None)

    def iterate(self, label: str, it: Any) -> AsyncIterator[Any]:
        """Iterate an async iterator, each `__anext__` tracked as a pending call."""
        return _TrackedIterator(self, f"{label}.__anext__", it.__aiter__())

    def waiting(self, label: str, aw: Awaitable[T]) -> "Waiting":
        """Start the flow's *waiting call* (the one the cancel family gives up on) in its own task,
        as a caller that may cancel it does: tracked as pending until it ends; `await
        w.result()` for its value."""
        return Waiting(self, label, aw)

    def pending_calls(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [{"label": p["label"], "age": round(now - p["since"], 3), "task": p["task"]} for p in self.pending.values()]




class Waiting:
    """A waiting call in its own task: what `cancel.task` cancels and `cancel.deadline` puts a
    deadline on (`asyncio.timeout`, rescheduled while the call waits), as a caller would."""

    def __init__(self, ctx: FlowContext, label: str, aw: Awaitable[Any]) -> None:
        self.ctx, self.label = ctx, label
        self.how = ""  # what the cancel family did to it: "cancelled" | "deadline"
        self.gave_up_at: float | None = None  # when the caller gave up (the cancel; the deadline's moment)
        self.t0 = time.monotonic()
        self._cm: Any = None
        self.k = ctx._enter(label)
        self.task = ctx._agent.own(asyncio.get_running_loop().create_task(self._run(aw)), "flow")
        ctx.pending[self.k]["task"] = id(self.task)  # the stuck check's stack: the call's own task
        ctx.waits[self.k] = self
        self.task.add_done_callback(self._done)

    async def _run(self, aw: Awaitable[Any]) -> Any:
        async with asyncio.timeout(None) as cm:
            self._cm = cm
            return await aw

    def _done(self, _: Any) -> None:
        self.ctx.pending.pop(self.k, None)
        self.ctx.waits.pop(self.k, None)

    def cancel(self) -> None:
        """The caller gives up: cancel the task waiting in the call."""
        self.how = "cancelled"
        self.gave_up_at = time.monotonic()
        self.task.cancel()

    def expire(self, after: float) -> None:
        """The caller's own deadline around the call, set to fire `after` seconds from now."""
        self.how = "deadline"
        self.gave_up_at = time.monotonic() + after
        if self._cm is not None:
            self._cm.reschedule(asyncio.get_running_loop().time() + after)

    async def result(self, within: float | None = None) -> Any:
        """The call's value; `CallCancelled` if the cancel family ended it; the client's own
        errors (its timeout) as raised; `PENDING` if it is still waiting after `within` seconds."""
        if within is not None:
            done, _ = await asyncio.wait({self.task}, timeout=within)
            if not done:
                return PENDING
        try:
            value = await self.task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self.how == "cancelled" and self.task.cancelled() and not (me and me.cancelling()):
                self._ended("cancelled")
                self._gave_up()
                raise CallCancelled(self.label, "cancelled") from None
            raise
        except TimeoutError:
            if self.how == "deadline" and self._cm is not None and self._cm.expired():
                self._ended("deadline")
                self._gave_up()
                raise CallCancelled(self.label, "deadline") from None
            self._ended("timeout")
            raise
        except Exception:
            self._ended("error")
            raise
        self._ended("value")
        return value

    def _gave_up(self) -> None:
        """One of the cancel fault's cancels is spent (the flow makes its call again while any are left)."""
        self.ctx.cancels_left = max(self.ctx.cancels_left - 1, 0)

    def _ended(self, how: str) -> None:
        now = time.monotonic()
        took = now - self.t0
        self.ctx.continuation.waited(self.label, how, took, None if self.gave_up_at is None else now - self.gave_up_at)
        self.ctx._agent.emit("waiting call ended", label=self.label, how=how, cancel=self.how, took=round(took, 4))


class _TrackedIterator:
    """An async iterator whose `__anext__` is a plain coroutine, so a pending call's await
    chain (the stuck check's evidence) runs down into the client's own `__anext__`."""

    def __init__(self, ctx: FlowContext, label: str, ait: Any) -> None:
        self._ctx, self._label, self._ait = ctx, label, ait

    def __aiter__(self) -> "_TrackedIterator":
        return self

    async def __anext__(self) -> Any:
        k = self._ctx._enter(self._label)
        try:
            return await self._ait.__anext__()
        finally:
            self._ctx.pending.pop(k, None)
