"""Triggers: *when* a fault fires, established from observed state rather than a sleep.

- barrier triggers (`in_call`, `before_ack`): the flow holds at its checkpoint of that
  name; the fault goes in; the flow is released and makes the call under the fault;
- observed triggers: `waiting` (a pull request of the flow's consumer is parked on the
  server, per /jsz), `blocked` (the flow sits in a tracked call such as `__anext__` or
  `next_msg` after it has every message), `transfer` (a multi-chunk object is being
  delivered: the link is first paced so the transfer lasts, then the fault fires once
  the object's consumer has delivered `transfer_chunks` chunks), `consumer_created` (the
  client created a consumer on the flow's stream, seen on the server, while every reply to
  the client is held back by a latency toxic: the fault lands after the server made the
  consumer and before its create reply reached the client — the window of
  nats-io/nats.go#1848), `api_request` (the server has received the client's `nth` JetStream
  API request of kind `api` on the flow's stream, e.g. `CONSUMER.INFO`, seen by the observer
  subscribed beside the API; the link towards the server is slowed 300 ms, so the client's
  *next* request is still on its way when the fault goes in — e.g. `kv.keys()`'s own
  `consumer_info()` after `watch()`'s, KI-011's window).

A toxic cannot drop a reply a pacing `latency` toxic already holds: adding or removing a
toxic interrupts the chain and Toxiproxy forwards held chunks at once. A fault that closes
the client's connection (a disconnect) loses them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

PACING = "pacing"


@dataclasses.dataclass(frozen=True)
class Trigger:
    name: str
    barrier: str = ""  # checkpoint name the flow holds at, for barrier triggers
    fired: Callable[[Any], bool] | None = None  # observed triggers: polled with the run context
    paced: bool = False  # needs the link slowed so the moment can be observed
    pacing: dict[str, Any] = dataclasses.field(default_factory=dict)  # the pacing toxic (default: bandwidth at Settings.pacing_kbps)
    arm: Callable[[Any], None] | None = None  # set up what `fired` watches, before the flow starts
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # fault_params it reads, with defaults


def _waiting(rc: Any) -> bool:
    if not rc.received():
        return False
    c = rc.observer.jsz_consumers(rc.names.stream).get(rc.names.consumer)
    return bool(c and c.get("num_waiting", 0) >= 1)


def _blocked(rc: Any) -> bool:
    if not rc.received():
        return False
    return any(p.age >= 0.1 for p in rc.agent.pending())


def _transfer(rc: Any) -> bool:
    want = int(rc.scenario.fault_params.get("transfer_chunks", 2))
    for c in rc.observer.jsz_consumers(rc.object_stream).values():
        if c.get("delivered", {}).get("stream_seq", 0) >= want:
            return True
    return False


def _consumer_created(rc: Any) -> bool:
    return any(name not in rc.baseline.consumers for name in rc.observer.jsz_consumers(rc.object_stream))


def _arm_api_request(rc: Any) -> None:
    api = str(rc.scenario.fault_params.get("api", "CONSUMER.INFO"))
    rc.api_requests = rc.observer.watch_requests(rc.names, f"$JS.API.{api}.{rc.object_stream}.>")


def _api_request(rc: Any) -> bool:
    return len(rc.api_requests) >= int(rc.scenario.fault_params.get("nth", 1))


TRIGGERS: dict[str, Trigger] = {
    t.name: t
    for t in (
        Trigger("in_call", barrier="in_call"),
        Trigger("before_ack", barrier="before_ack"),
        Trigger("waiting", fired=_waiting),
        Trigger("blocked", fired=_blocked),
        Trigger("transfer", fired=_transfer, paced=True, params={"transfer_chunks": 2}),
        # Replies held 0.5 s (downstream only): the create reply is still in the proxy when
        # the observer sees the consumer (it polls /jsz every few ms).
        Trigger("consumer_created", fired=_consumer_created, paced=True, pacing={"type": "latency", "latency": 500}),
        # Requests towards the server slowed 300 ms: the next one is in flight when the fault goes in.
        Trigger("api_request", fired=_api_request, paced=True, arm=_arm_api_request,
                pacing={"type": "latency", "stream": "upstream", "latency": 300}, params={"api": "CONSUMER.INFO", "nth": 1}),
    )
}
