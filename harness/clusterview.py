"""What the cluster says about a flow's stream: leaders (JetStream API), and each node's own
copy of it (`/jsz` on that node's monitoring port). Values only; faults and checks read them.

Read through the observer's connection (it reaches every node directly) and each node's
monitoring endpoint; every call is bounded.
"""

from __future__ import annotations

import json
import time
from typing import Any

from harness.errors import HarnessError

STEPDOWN_WAIT = 5.0  # a new leader is elected within this after a stepdown, a kill or a partition


class ClusterViewError(HarnessError):
    """The cluster did not answer (no leader, API error): the message is one line."""


def api(obs: Any, subject: str, payload: bytes = b"", timeout: float = 3.0) -> dict[str, Any]:
    """One JetStream API request through the observer; the reply as JSON."""

    async def go() -> dict[str, Any]:
        msg = await obs.nc.request(subject, payload, timeout=timeout)
        return json.loads(msg.data or b"{}")

    try:
        return obs.run(go, timeout=timeout + 1.0)
    except Exception as e:  # timeouts, no responders while a node is down
        raise ClusterViewError(f"{subject}: {type(e).__name__}: {e}".rstrip(": ")) from None


def stream_info(obs: Any, stream: str) -> dict[str, Any]:
    return api(obs, f"$JS.API.STREAM.INFO.{stream}")


def consumer_info(obs: Any, stream: str, consumer: str) -> dict[str, Any]:
    return api(obs, f"$JS.API.CONSUMER.INFO.{stream}.{consumer}")


def leader_of(info: dict[str, Any]) -> str:
    """The leader a stream or consumer info names ("" if none, or an error reply)."""
    return str((info.get("cluster") or {}).get("leader") or "")


def stream_leader(obs: Any, stream: str) -> str:
    try:
        return leader_of(stream_info(obs, stream))
    except ClusterViewError:
        return ""


def consumer_leader(obs: Any, stream: str, consumer: str) -> str:
    try:
        return leader_of(consumer_info(obs, stream, consumer))
    except ClusterViewError:
        return ""


def replicas_of(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The followers a stream/consumer info lists (name, current, active, lag)."""
    return list((info.get("cluster") or {}).get("replicas") or [])


def stepdown_stream(obs: Any, stream: str) -> dict[str, Any]:
    return api(obs, f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", timeout=STEPDOWN_WAIT)


def stepdown_consumer(obs: Any, stream: str, consumer: str) -> dict[str, Any]:
    return api(obs, f"$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}", timeout=STEPDOWN_WAIT)


def wait_leader(read: Any, not_: str = "", within: float = STEPDOWN_WAIT) -> str:
    """Poll `read()` (a leader name) until it names a leader other than `not_`; "" at the deadline."""
    deadline = time.monotonic() + within
    delay = 0.02
    while True:
        got = read()
        if got and got != not_:
            return got
        if time.monotonic() >= deadline:
            return ""
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


# -- each node's own copy -----------------------------------------------------------------


def node_copy(jsz: dict[str, Any] | None, stream: str) -> dict[str, Any] | None:
    """One node's copy of `stream` from its `/jsz?streams=true&consumers=true` (None if the node
    does not answer or holds no copy): messages, first/last seq, and each consumer's ack floor."""
    if not jsz:
        return None
    for acc in jsz.get("account_details") or []:
        for s in acc.get("stream_detail") or []:
            if s.get("name") != stream:
                continue
            st = s.get("state") or {}
            return {
                "messages": st.get("messages", 0),
                "first_seq": st.get("first_seq", 0),
                "last_seq": st.get("last_seq", 0),
                "leader": (s.get("cluster") or {}).get("leader", ""),
                "replicas": (s.get("config") or {}).get("num_replicas", 1),
                "consumers": {
                    c["name"]: {
                        "ack_floor": (c.get("ack_floor") or {}).get("stream_seq", 0),
                        "delivered": (c.get("delivered") or {}).get("stream_seq", 0),
                        "num_pending": c.get("num_pending", 0),
                        "num_ack_pending": c.get("num_ack_pending", 0),
                        "num_waiting": c.get("num_waiting", 0),
                        "leader": (c.get("cluster") or {}).get("leader", ""),
                        "push_bound": bool(c.get("push_bound", False)),
                        "inactive_threshold": ((c.get("config") or {}).get("inactive_threshold") or 0) / 1e9,
                        "durable": bool((c.get("config") or {}).get("durable_name")),
                    }
                    for c in s.get("consumer_detail") or []
                },
            }
    return None


def copies(env: Any, stream: str) -> dict[str, dict[str, Any] | None]:
    """Every node's copy of `stream`, by node name (None: no answer or no copy)."""
    docs = env.monitor_all("/jsz?streams=true&consumers=true&config=true", timeout=2.0)
    return {name: node_copy(doc, stream) for name, doc in docs.items()}


def meta_leader(env: Any) -> str:
    for doc in env.monitor_all("/jsz", timeout=1.0).values():
        leader = ((doc or {}).get("meta_cluster") or {}).get("leader")
        if leader:
            return str(leader)
    return ""


def routes(env: Any) -> dict[str, dict[str, int]]:
    """Each node's route connections per remote node, from its `/routez` ({} if it does not answer)."""
    from harness.env.cluster import route_peers

    return {name: route_peers(doc) if doc is not None else {} for name, doc in env.monitor_all("/routez", timeout=1.0).items()}


def is_cluster(env: Any) -> bool:
    return bool(env.is_cluster)


def cluster_leader_event(rc: Any, when: str) -> None:
    """On a cluster, a timeline event naming the flow's stream leader (before a fault, after its heal)."""
    if not is_cluster(rc.env):
        return
    with rc.waiting():
        leader = stream_leader(rc.observer, rc.object_stream)
    rc.event("stream leader", when=when, stream=rc.object_stream, leader=leader or "(none)")


def cluster_state_event(rc: Any) -> None:
    """On a cluster, a timeline event with each node's copy of the flow's stream at the end
    (messages, first/last sequence, the leader it names, each consumer's ack floor), and the
    meta leader: the report shows it as a table per node."""
    if not is_cluster(rc.env):
        return
    with rc.waiting():
        copies = rc.copies() or {}
        meta = meta_leader(rc.env)
    nodes = {}
    for name, c in sorted(copies.items()):
        nodes[name] = None if c is None else {
            "messages": c["messages"], "first_seq": c["first_seq"], "last_seq": c["last_seq"],
            "leader": c.get("leader", ""), "ack_floors": {n: x["ack_floor"] for n, x in sorted(c["consumers"].items())}}
    rc.event("cluster state", stream=rc.object_stream, meta_leader=meta, nodes=nodes)
