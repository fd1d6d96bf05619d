"""Interest retention: once every consumer has acknowledged every message, the stream is empty.

An interest-retention stream keeps a message only while a consumer still has to ack it.
The step reads the server (observer: stream info, consumer infos, `/jsz`): only when every
consumer of the flow's stream is done — nothing pending, nothing ack-pending, ack floor at
the last sequence — it waits up to `interest_bound` for the message count to reach 0; what
is left is a finding, with the stream's and every consumer's state as evidence. A flow that
did not get everything acked is the `messages` check's business, not this one's.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from harness.checks import AFTER_FLOW, Finding, Sources, check, step

BOUND = 5.0  # seconds the server gets to drop the last acknowledged messages


def all_acked(stream: Mapping[str, Any], consumers: Mapping[str, Mapping[str, Any]]) -> bool:
    """Every consumer acked up to the stream's last sequence, with nothing pending."""
    last = stream["last_seq"]
    return bool(consumers) and all(
        c["num_pending"] == 0 and c["num_ack_pending"] == 0 and c["ack_floor_stream_seq"] >= last for c in consumers.values()
    )


def find_kept(stream: Mapping[str, Any], consumers: Mapping[str, Mapping[str, Any]], waited: float,
              jsz_messages: Any = None) -> list[Finding]:
    """Messages still in an interest stream `waited` seconds after every consumer acked everything."""
    if stream["messages"] == 0:
        return []
    floors = "\n".join(
        f"  {n}: ack_floor={c['ack_floor_stream_seq']} delivered={c['delivered_stream_seq']} num_pending={c['num_pending']} "
        f"num_ack_pending={c['num_ack_pending']} num_redelivered={c.get('num_redelivered', 0)}"
        for n, c in sorted(consumers.items())
    )
    return [Finding(
        "interest",
        f"interest stream {stream['name']} keeps {stream['messages']} message(s) {waited:.1f}s after every consumer "
        f"({len(consumers)}) acked all {stream['last_seq']}",
        evidence=f"stream: messages={stream['messages']} first_seq={stream['first_seq']} last_seq={stream['last_seq']} "
                 f"num_deleted={stream.get('num_deleted', 0)}" + (f"; /jsz messages={jsz_messages}" if jsz_messages is not None else "")
                 + f"\nconsumers:\n{floors}",
    )]


check("interest", "an interest-retention stream is empty once every consumer acked every message")


@step("interest", AFTER_FLOW, needs=("observer",))
def after_flow(s: Sources) -> list[Finding]:
    """Judge the flow's stream if it has interest retention and every consumer is done."""
    stream = s.stream()
    if stream is None or stream["retention"] != "interest":
        return []
    consumers = s.consumers()
    if not all_acked(stream, consumers):
        s.event("interest: not every consumer acked everything", last_seq=stream["last_seq"],
                floors={n: c["ack_floor_stream_seq"] for n, c in consumers.items()})
        return []
    t = time.monotonic()
    while stream["messages"] and time.monotonic() - t < s.interest_bound:
        time.sleep(0.1)
        stream = s.stream() or stream
    waited = time.monotonic() - t
    if stream["messages"]:
        s.add_inherent(waited)
        return find_kept(stream, s.consumers(), waited, s.jsz_messages())
    s.event("interest: stream empty", after=round(waited, 3), acked=stream["last_seq"])
    return []
