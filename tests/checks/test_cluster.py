"""The cluster checks on hand-built copies: every node's view of the stream, as `/jsz` gives it."""

from __future__ import annotations

from typing import Any

from checks_helpers import FakeSources, Series, consumer, run_step
from harness.checks import AFTER_CLOSE, AFTER_FLOW, Baseline
from harness.checks.cluster import find_acked_unseen, find_diverged, find_kept_on_replicas, find_left_on_nodes


def ccons(ack_floor: int = 5, delivered: int = 5, **kw: Any) -> dict[str, Any]:
    return {"ack_floor": ack_floor, "delivered": delivered, "num_pending": 0, "num_ack_pending": 0, "num_waiting": 0,
            "leader": "n1", "push_bound": False, "inactive_threshold": 0.0, "durable": True, **kw}


def copy(messages: int = 5, first: int = 1, last: int = 5, **consumers: dict[str, Any]) -> dict[str, Any]:
    return {"messages": messages, "first_seq": first, "last_seq": last, "leader": "n1", "replicas": 3,
            "consumers": consumers}


def stream(messages: int = 5, retention: str = "limits", replicas: int = 3) -> dict[str, Any]:
    return {"name": "S", "retention": retention, "messages": messages, "first_seq": 1, "last_seq": 5, "num_deleted": 0,
            "replicas": replicas}


AGREE = {"n1": copy(d=ccons()), "n2": copy(d=ccons()), "n3": copy(d=ccons())}


def test_copies_that_agree_find_nothing() -> None:
    assert find_diverged("S", AGREE, 3) == []


def test_a_replica_with_other_counts_is_named_with_every_node_as_evidence() -> None:
    diverged = {**AGREE, "n3": copy(messages=0, first=6, last=5, d=ccons())}  # purged while stopped
    found = find_diverged("S", diverged, 3)
    assert [f.summary for f in found] == [
        "stream S's replicas disagree on messages: n1=5, n2=5, n3=0",
        "stream S's replicas disagree on first_seq: n1=1, n2=1, n3=6",
    ]
    assert "n3: messages=0 first_seq=6 last_seq=5" in found[0].evidence and "n1: messages=5" in found[0].evidence


def test_an_ack_floor_behind_on_one_node_and_a_missing_replica_are_findings() -> None:
    found = find_diverged("S", {"n1": copy(d=ccons()), "n2": copy(d=ccons(ack_floor=3)), "n3": None}, 3)
    assert [f.summary for f in found] == [
        "stream S has 2 of its 3 replicas; no copy on n3",
        "consumer d's replicas disagree on its ack floor: n1=5, n2=3",
    ]


def test_replicas_step_waits_for_a_catching_up_node_and_skips_one_server() -> None:
    behind = {**AGREE, "n2": copy(messages=3, last=3, d=ccons(ack_floor=3))}
    s = FakeSources(streams=Series(stream()), copy_reads=Series(behind, behind, AGREE))
    assert run_step("replicas", AFTER_CLOSE, s) == []
    assert ("replicas agree", {"stream": "S", "replicas": 3}) in s.events
    assert run_step("replicas", AFTER_CLOSE, FakeSources(streams=Series(stream()))) == []  # copies() is None


def test_replicas_step_reports_what_still_disagrees_at_its_bound(monkeypatch: Any) -> None:
    import harness.checks.cluster as cl

    monkeypatch.setattr(cl, "REPLICA_BOUND", 0.3)
    behind = {**AGREE, "n2": copy(messages=3, last=3, d=ccons(ack_floor=3))}
    found = run_step("replicas", AFTER_CLOSE, FakeSources(streams=Series(stream()), copy_reads=Series(behind)))
    assert {f.check for f in found} == {"replicas"} and len(found) == 3


def test_a_consumer_kept_on_a_node_or_left_behind_by_the_cluster_is_found() -> None:
    # created through a follower, never deleted, no inactive threshold: kept on every node
    left = {n: copy(d=ccons(), leak=ccons(durable=True)) for n in ("n1", "n2", "n3")}
    api = {"d": consumer("d"), "leak": consumer("leak", inactive_threshold=None)}
    found = find_left_on_nodes(left, api, {"d"})
    assert [f.summary for f in found] == [
        "consumer leak kept alive on n1, n2, n3 after close: has no inactive threshold: it will never be reaped"]
    # the meta leader dropped it; one node still holds it
    ghost = {"n1": copy(d=ccons()), "n2": copy(d=ccons(), old=ccons(inactive_threshold=5.0)), "n3": copy(d=ccons())}
    found = find_left_on_nodes(ghost, {"d": consumer("d")}, {"d"})
    assert [f.summary for f in found] == ["consumer old is gone from the cluster's listing but still held on n2"]
    # an ephemeral on its way out (threshold, not bound) is not a leak
    going = {n: copy(e=ccons(inactive_threshold=2.0)) for n in ("n1", "n2", "n3")}
    assert find_left_on_nodes(going, {"e": consumer("e", inactive_threshold=2.0)}, set()) == []


def test_replica_consumers_step_settles_then_reports() -> None:
    left = {n: copy(leak=ccons()) for n in ("n1", "n2", "n3")}
    s = FakeSources(baseline=Baseline(consumers=frozenset({"d"})), copy_reads=Series(left),
                    consumer_reads=Series({"leak": consumer("leak", inactive_threshold=None)}))
    assert len(run_step("replica_consumers", AFTER_CLOSE, s)) == 1
    clean = FakeSources(copy_reads=Series({n: copy() for n in ("n1", "n2", "n3")}))
    assert run_step("replica_consumers", AFTER_CLOSE, clean) == []


def test_interest_kept_on_one_replica_is_found() -> None:
    copies = {"n1": copy(messages=0, first=6), "n2": copy(messages=0, first=6), "n3": copy(messages=2, first=4)}
    found = find_kept_on_replicas("S", copies, 5.0)
    assert [f.summary for f in found] == ["interest stream S still keeps messages on n3 (2) 5.0s after every consumer acked all"]
    assert find_kept_on_replicas("S", {n: copy(messages=0, first=6) for n in ("n1", "n2")}, 1.0) == []


def test_replica_interest_step_judges_only_once_every_consumer_is_done() -> None:
    done = {"c": {**consumer("c"), "ack_floor_stream_seq": 5}}
    kept = {"n1": copy(messages=0, first=6), "n2": copy(messages=0, first=6), "n3": copy(messages=2, first=4)}
    s = FakeSources(streams=Series(stream(0, "interest")), consumer_reads=Series(done), copy_reads=Series(kept), interest_bound=0.2)
    assert [f.check for f in run_step("replica_interest", AFTER_FLOW, s)] == ["replica_interest"]
    pending = {"c": {**consumer("c", num_ack_pending=1), "ack_floor_stream_seq": 4}}
    s = FakeSources(streams=Series(stream(0, "interest")), consumer_reads=Series(pending), copy_reads=Series(kept))
    assert run_step("replica_interest", AFTER_FLOW, s) == []


def test_acks_the_client_never_saw_are_found() -> None:
    server = {"ack_floor_stream_seq": 10, "num_pending": 0, "num_ack_pending": 0}
    found = find_acked_unseen("d", 8, server, 1)
    assert [f.summary for f in found] == ["consumer d: the server counts 10 message(s) acked (ack floor 10), "
                                          "but the client was handed only 8 distinct sequence(s)"]
    assert find_acked_unseen("d", 10, server, 1) == []
    assert find_acked_unseen("d", 8, {**server, "num_ack_pending": 2}, 1) == []  # not everything acked: not judged
    assert find_acked_unseen("d", 8, None, 1) == []


def test_accounting_step_judges_only_on_a_cluster_and_reads_no_node_to_know_it(monkeypatch: Any) -> None:
    from harness.agent.ledger import DeliveryLedger

    monkeypatch.setattr("harness.checks.cluster.REPLICA_BOUND", 0.2)  # the leaky case waits out its bound

    led = DeliveryLedger(limit=100, shown=20)
    for seq in (1, 2, 3, 4):  # the server counts 5 acked; the client was handed 4
        led.record("c_x", seq, 1)
    outcome = {"status": "ok", "deliveries": led.summary()}
    server = {"c_x": {**consumer("c_x"), "ack_floor_stream_seq": 5, "num_pending": 0, "num_ack_pending": 0}}
    copies = Series(AGREE)
    single = FakeSources(outcome=outcome, consumer_reads=Series(server), copy_reads=copies, leak_grace=0.0)
    assert run_step("accounting", AFTER_CLOSE, single) == [] and copies.calls == 0
    on = FakeSources(outcome=outcome, consumer_reads=Series(server), copy_reads=copies, on_cluster=True, leak_grace=0.0)
    found = run_step("accounting", AFTER_CLOSE, on)
    assert [f.check for f in found] == ["accounting"] and copies.calls == 0
