"""An order-processing worker, written the way an application writes it, put under chaos.

`OrderWorker` is the application's code: it knows nothing of the harness. It pulls orders
from a JetStream durable consumer, processes each (here: totals it), acks it, and when it
has handled what it was asked to (or is told to stop) it shuts down with `nc.drain()`.

The two functions below it are all the harness needs:
- `prepare_orders` runs in the harness's observer (a direct connection, no proxy) and
  creates what the worker expects to find in production: the stream, the durable
  consumer, and the orders;
- `order_worker` (registered with `@flow`) runs in the agent against the connection under
  test (through Toxiproxy) and adapts the worker to the harness: it reports the orders it
  has in hand (`ctx.received`), marks where a fault may go in (`ctx.checkpoint`) and its
  terminal event (`ctx.terminal`: the shutdown), and turns a wrong result into an
  `IntegrityError` (a finding of the `messages` check).

Run it, from the project folder:
    harness run examples/order_worker/orders.yaml --flows examples.order_worker.orders
(see the README, "Your own code under test").
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable, Mapping

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from harness.flows import IntegrityError, Names, flow


class OrderWorker:
    """Pull orders, process each once, ack it; drain the connection on the way out.

    `after_poll` and `before_shutdown` are the application's own hooks (metrics, health
    checks); the harness's adapter below uses them too.
    """

    def __init__(self, nc: Any, stream: str, durable: str, *, batch: int = 10, poll_timeout: float = 1.0,
                 idle_backoff: float = 1.5, after_poll: Callable[[int, int], Awaitable[None]] | None = None,
                 before_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
        self.nc, self.js = nc, nc.jetstream()
        self.stream, self.durable = stream, durable
        self.batch, self.poll_timeout, self.idle_backoff = batch, poll_timeout, idle_backoff
        self.after_poll, self.before_shutdown = after_poll, before_shutdown
        self.totals: dict[str, int] = {}  # order id -> amount, each order counted once
        self.redelivered = 0
        self.stopping = asyncio.Event()

    async def run(self, expected: int) -> None:
        """Process until `expected` orders are done or `stop()` is called, then drain."""
        sub = await self.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
        polls = 0
        try:
            while len(self.totals) < expected and not self.stopping.is_set():
                polls += 1
                try:
                    msgs = await sub.fetch(self.batch, timeout=self.poll_timeout)
                except asyncio.TimeoutError:  # nothing to do (or the server is slow): back off
                    msgs = []
                    await asyncio.sleep(self.idle_backoff)
                for msg in msgs:
                    await self.handle(msg)
                if self.after_poll is not None:
                    await self.after_poll(polls, len(msgs))
        finally:
            if self.before_shutdown is not None:
                await self.before_shutdown()
            if not self.nc.is_closed:
                await self.nc.drain()  # let in-flight acks reach the server, then close

    async def handle(self, msg: Any) -> None:
        order = json.loads(msg.data)
        if order["id"] in self.totals:
            self.redelivered += 1  # at-least-once: a redelivered order is acked, not charged twice
        else:
            self.totals[order["id"]] = order["qty"] * order["price"]
        await msg.ack()

    def stop(self) -> None:
        self.stopping.set()


# -- the harness's side -------------------------------------------------------------------

async def prepare_orders(js: Any, names: Names, params: Mapping[str, Any]) -> None:
    """The stream, the durable consumer and the orders, as production would have them."""
    await js.add_stream(StreamConfig(name=names.stream, subjects=[f"{names.subject}.>"]))
    # A short ack wait: an order whose delivery was lost with the connection comes again soon.
    await js.add_consumer(names.stream, ConsumerConfig(durable_name=names.consumer, ack_policy=AckPolicy.EXPLICIT,
                                                       ack_wait=3.0))
    for i in range(params["orders"]):
        await js.publish(f"{names.subject}.orders", json.dumps({"id": f"o{i}", "qty": 1 + i % 3, "price": 100}).encode())


@flow("orders.worker", triggers=("in_call",), prepare=prepare_orders,
      defaults={"orders": 20, "batch": 5, "poll_timeout": 1.0, "idle_backoff": 1.5}, closes_client=True)
async def order_worker(ctx: Any) -> dict:
    """The order worker handles every order once and drains its connection."""
    orders = ctx.params["orders"]

    async def after_poll(polls: int, got: int) -> None:
        ctx.check_deadline(f"{len(worker.totals)} of {orders} orders")  # a careful test gives up, saying how far
        if polls == 1:  # a fault may go in between the first batch and the next poll
            await ctx.checkpoint("in_call")

    async def before_shutdown() -> None:
        if len(worker.totals) >= orders:
            ctx.received(sorted(worker.totals))
        # The worker's shutdown is the flow's terminal event: what it leaves pending, its
        # nc.drain() included, must end within the harness's stuck bound.
        ctx.terminal("the worker drains its connection")

    worker = OrderWorker(ctx.nc, ctx.names.stream, ctx.names.consumer, batch=ctx.params["batch"],
                         poll_timeout=ctx.params["poll_timeout"], idle_backoff=ctx.params["idle_backoff"],
                         after_poll=after_poll, before_shutdown=before_shutdown)
    await ctx.call("order worker", worker.run(orders))
    want = sum((1 + i % 3) * 100 for i in range(orders))
    if sum(worker.totals.values()) != want:
        raise IntegrityError(f"orders total {sum(worker.totals.values())}, expected {want}")
    return {"orders": len(worker.totals), "redelivered": worker.redelivered}
