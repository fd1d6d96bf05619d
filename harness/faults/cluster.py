"""Cluster faults: leaders moved, nodes killed, restarted, paused or cut off from their peers.

Each acts on the flow's stream (its leader, or a follower holding a replica) in a 3-node
cluster (`cluster: 3`), and each has evidence read from the cluster itself: a new leader
named in stream/consumer info, a node's process gone, `/routez` on both sides of a cut,
a node's `/healthz` unanswered, the toxics on its route proxies.

Raft elections after a leader is lost take seconds (nats-server's election timeout is a few
seconds), so the evidence of a kill or a partition waits up to `ELECTION_WAIT` for the new
leader; the wait is inherent (the runner times evidence as waiting).
"""

from __future__ import annotations

from typing import Any

from harness import clusterview as cv
from harness.env.process import http_ok
from harness.faults import register

ELECTION_WAIT = 12.0  # a stream whose leader died or was cut off has a new leader within this
PAUSE_PROBE = 0.3


def _state(fx: Any) -> dict[str, Any]:
    return fx.fault_state


def _stream(fx: Any) -> str:
    return fx.object_stream


def _leader(fx: Any) -> str:
    return cv.stream_leader(fx.observer, _stream(fx))


def _follower(fx: Any) -> str:
    """A node holding a replica of the flow's stream that does not lead it; one the client is
    not connected to when there is a choice (so the client's own link stays up)."""
    info = cv.stream_info(fx.observer, _stream(fx))
    leader = cv.leader_of(info)
    names = [r["name"] for r in cv.replicas_of(info) if r.get("name") and r["name"] != leader]
    if not names:
        raise cv.ClusterViewError(f"stream {_stream(fx)} has no follower (replicas: 1?): give the flow `replicas: 3`")
    client_node = fx.env.nodes[0].name
    return sorted(names, key=lambda n: (n == client_node, n))[0]


def _note(fx: Any, what: str, **kw: Any) -> None:
    _state(fx).update(kw)
    fx.event(what, **kw)


# -- leader stepdowns -----------------------------------------------------------------


def _stepdown_stream(fx: Any) -> None:
    before = _leader(fx)
    reply = cv.stepdown_stream(fx.observer, _stream(fx))
    _note(fx, "stream stepdown requested", stream=_stream(fx), leader_before=before,
          error=(reply.get("error") or {}).get("description", ""))


def _stepdown_stream_evidence(fx: Any) -> tuple[bool, str]:
    before = _state(fx).get("leader_before", "")
    after = cv.wait_leader(lambda: _leader(fx), not_=before, within=cv.STEPDOWN_WAIT)
    if not before:
        return False, "no stream leader before the stepdown"
    if not after:
        return False, f"stream info still names {before} (or no leader) {cv.STEPDOWN_WAIT:.0f}s after the stepdown"
    return True, f"stream {_stream(fx)} leader {before} -> {after} (stream info)"


register("cluster.stepdown_stream", _stepdown_stream, lambda fx: None, _stepdown_stream_evidence,
         "the flow's stream leader steps down ($JS.API.STREAM.LEADER.STEPDOWN): another replica leads", cluster=True)


def _consumers(fx: Any) -> list[str]:
    """The flow's consumer: the observer's durable if the flow has one, else those the client
    created, else every consumer prepared on the stream (e.g. interest's three)."""
    have = fx.observer.consumers(_stream(fx))
    if fx.consumer_name in have:
        return [fx.consumer_name]
    fresh = sorted(n for n in have if n not in fx.baseline.consumers)
    if not fresh and not have:
        raise cv.ClusterViewError(f"no consumer on stream {_stream(fx)} to step down")
    return fresh or sorted(have)


def _stepdown_consumer(fx: Any) -> None:
    names = _consumers(fx)
    before = {n: cv.consumer_leader(fx.observer, _stream(fx), n) for n in names}
    errors = {}
    for n in names:
        reply = cv.stepdown_consumer(fx.observer, _stream(fx), n)
        if reply.get("error"):
            errors[n] = reply["error"].get("description", "")
    _note(fx, "consumer stepdown requested", consumers=names, leaders_before=before, errors=errors)


def _stepdown_consumer_evidence(fx: Any) -> tuple[bool, str]:
    before = _state(fx).get("leaders_before", {})
    moved, texts = True, []
    for n, was in sorted(before.items()):
        after = cv.wait_leader(lambda: cv.consumer_leader(fx.observer, _stream(fx), n), not_=was, within=cv.STEPDOWN_WAIT)
        if not was or not after:
            moved = False
            texts.append(f"consumer {n}: leader {was or 'none'} unchanged {cv.STEPDOWN_WAIT:.0f}s after the stepdown")
        else:
            texts.append(f"consumer {n} leader {was} -> {after}")
    return moved and bool(before), "; ".join(texts) + " (consumer info)"


register("cluster.stepdown_consumer", _stepdown_consumer, lambda fx: None, _stepdown_consumer_evidence,
         "the flow's consumer leader steps down ($JS.API.CONSUMER.LEADER.STEPDOWN; every consumer of the stream "
         "if the flow has no durable of its own): another replica leads", cluster=True)


# -- nodes killed, restarted, paused --------------------------------------------------


def _kill_leader(fx: Any) -> None:
    node = _leader(fx)
    if not node:
        raise cv.ClusterViewError(f"stream {_stream(fx)} has no leader to kill")
    _note(fx, "killing the stream leader", node=node, leader_before=node)
    fx.env.kill_node(node)


def _new_leader_evidence(fx: Any, what: str) -> tuple[bool, str]:
    node = _state(fx).get("node", "")
    running = fx.env.node_running(node) if node else True
    after = cv.wait_leader(lambda: _leader(fx), not_=node, within=ELECTION_WAIT)
    ok = bool(node) and not running and bool(after)
    return ok, (f"{node} {what}: process {'still running' if running else 'gone'}; stream leader after: "
                f"{after or f'none within {ELECTION_WAIT:.0f}s'}")


def _restart_node_heal(fx: Any) -> None:
    node = _state(fx).get("node", "")
    if node and not fx.env.node_running(node):
        fx.env.restart_node(node)  # returns once the cluster is ready again
        fx.event("node restarted", node=node)


register("cluster.kill_leader", _kill_leader, _restart_node_heal, lambda fx: _new_leader_evidence(fx, "SIGKILLed"),
         "the node leading the flow's stream is SIGKILLed (restarted on heal, same store)", cluster=True)


def _restart_leader(fx: Any) -> None:
    node = _leader(fx)
    if not node:
        raise cv.ClusterViewError(f"stream {_stream(fx)} has no leader to restart")
    _note(fx, "restarting the stream leader", node=node, leader_before=node)
    fx.env.restart_node(node, wait=False)  # stopped (it hands its leaderships over), started again


def _restart_leader_evidence(fx: Any) -> tuple[bool, str]:
    node = _state(fx).get("node", "")
    after = cv.wait_leader(lambda: _leader(fx), not_=node, within=ELECTION_WAIT)
    return bool(node and after), f"{node} stopped and started again; stream leader after: {after or 'still ' + node}"


register("cluster.restart_leader", _restart_leader, lambda fx: fx.env.wait_ready(), _restart_leader_evidence,
         "the node leading the flow's stream is stopped and started again (same ports, same store)", cluster=True)


def _kill_follower(fx: Any) -> None:
    node = _follower(fx)
    _note(fx, "killing a follower", node=node, leader_before=_leader(fx))
    fx.env.kill_node(node)


def _kill_follower_evidence(fx: Any) -> tuple[bool, str]:
    node = _state(fx).get("node", "")
    running = fx.env.node_running(node) if node else True
    leader = _leader(fx)
    return bool(node) and not running and bool(leader), (
        f"follower {node}: process {'still running' if running else 'gone'}; the stream still led by {leader or 'nobody'}")


register("cluster.kill_follower", _kill_follower, _restart_node_heal, _kill_follower_evidence,
         "a node holding a replica (not the leader) is SIGKILLed (restarted on heal)", cluster=True)


def _pause_follower(fx: Any) -> None:
    node = _follower(fx)
    _note(fx, "pausing a follower", node=node, leader_before=_leader(fx))
    fx.env.pause_node(node)


def _pause_follower_heal(fx: Any) -> None:
    node = _state(fx).get("node", "")
    if node:
        fx.env.resume_node(node)
        fx.env.wait_ready()


def _pause_evidence(fx: Any) -> tuple[bool, str]:
    node = _state(fx).get("node", "")
    answered = http_ok(f"{fx.env.node(node).monitor_url}/healthz", timeout=PAUSE_PROBE) if node else True
    return bool(node) and not answered, f"{node}: /healthz {'answered' if answered else 'unanswered'} within {PAUSE_PROBE}s"


register("cluster.pause_follower", _pause_follower, _pause_follower_heal, _pause_evidence,
         "a node holding a replica (not the leader) is frozen (SIGSTOP), then resumed (SIGCONT)", cluster=True)


# -- route faults -----------------------------------------------------------------------


def _target_node(fx: Any) -> str:
    which = str(fx.scenario.fault_params.get("node", "leader"))
    return _follower(fx) if which == "follower" else _leader(fx)


def _partition(fx: Any) -> None:
    node = _target_node(fx)
    if not node:
        raise cv.ClusterViewError(f"stream {_stream(fx)} has no leader to cut off")
    proxies = fx.env.route_proxies(node)
    _note(fx, "cutting a node's routes", node=node, leader_before=_leader(fx), proxies=proxies)
    for p in proxies:
        fx.env.toxiproxy.disable(p)


def _partition_heal(fx: Any) -> None:
    for p in _state(fx).get("proxies", []):
        fx.env.toxiproxy.enable(p)
    if _state(fx).get("proxies"):
        fx.env.wait_ready()  # every route up again


def _partition_evidence(fx: Any) -> tuple[bool, str]:
    node = _state(fx).get("node", "")
    r = cv.routes(fx.env)
    own = sum(r.get(node, {}).values())
    towards = {other: peers.get(node, 0) for other, peers in r.items() if other != node}
    answered = node in r and fx.env.monitor(node, "/routez") is not None
    after = cv.wait_leader(lambda: _leader(fx), within=ELECTION_WAIT)
    ok = bool(node) and answered and own == 0 and not any(towards.values())
    return ok, (f"/routez: {node} has {own} route(s); towards {node}: "
                + ", ".join(f"{o} {n}" for o, n in sorted(towards.items()))
                + f"; stream leader after: {after or 'none'}")


register("cluster.partition", _partition, _partition_heal, _partition_evidence,
         "every route into and out of one node cut (its route proxies disabled; node: leader or follower), "
         "the client's link to it kept", params={"node": "leader"}, cluster=True)


def _slow_route(fx: Any) -> None:
    node = _target_node(fx)
    proxies = fx.env.route_proxies(node)
    latency = int(fx.scenario.fault_params.get("latency", 500))
    _note(fx, "slowing a node's routes", node=node, leader_before=_leader(fx), proxies=proxies, latency=latency)
    for p in proxies:
        for stream in ("upstream", "downstream"):
            fx.env.toxiproxy.add_toxic(p, "latency", name=f"fault_slow_route_{stream}", stream=stream,
                                       latency=latency, jitter=0)


def _slow_route_heal(fx: Any) -> None:
    tp = fx.env.toxiproxy
    for p in _state(fx).get("proxies", []):
        present = {t.name for t in tp.toxics(p)}
        for stream in ("upstream", "downstream"):
            if f"fault_slow_route_{stream}" in present:
                tp.remove_toxic(p, f"fault_slow_route_{stream}")


def _slow_route_evidence(fx: Any) -> tuple[bool, str]:
    proxies = _state(fx).get("proxies", [])
    slowed = [p for p in proxies
              if sum(t.name.startswith("fault_slow_route") for t in fx.env.toxiproxy.toxics(p)) == 2]
    return bool(proxies) and slowed == proxies, (
        f"latency {_state(fx).get('latency')} ms both ways on {len(slowed)} of {len(proxies)} route proxies of {_state(fx).get('node')}")


register("cluster.slow_route", _slow_route, _slow_route_heal, _slow_route_evidence,
         "latency (default 500 ms) both ways on every route of one node (node: leader or follower)",
         params={"node": "leader", "latency": 500}, cluster=True)
