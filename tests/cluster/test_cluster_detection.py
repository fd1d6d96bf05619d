"""Detection power of the cluster checks, on a real 3-node cluster: each deliberate fault is
caught by the right check, and each clean twin passes — five times in a row.

- an acknowledged message handed over again after the consumer's leader moved (`delivery`);
- a durable consumer created through a follower and never deleted (`replica_consumers`,
  seen on every node);
- a diverged replica, made for real: a node killed, the stream purged on the majority, the
  node restarted with its routes cut so it keeps its old copy (`replicas`);
- a message acknowledged on the server that the client never handed to the application,
  across a consumer leader move (`accounting`);
- an interest stream whose consumer acked everything while a replica's node was down, the
  node started again cut off from its peers: that replica still keeps the messages
  (`replica_interest`; the clean twin's node rejoins and removes them).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "checks"))

from checks_helpers import FakeSources  # noqa: E402
from engine_helpers import FAST, agent_processes  # noqa: E402

from harness import clusterview as cv  # noqa: E402
from harness.checks import AFTER_CLOSE  # noqa: E402
from harness.env.cluster import LocalClusterEnvironment  # noqa: E402
from harness.observer import Observer, Replicated  # noqa: E402
from harness.runner import Runner  # noqa: E402
from harness.scenario import Scenario, load_file  # noqa: E402

RUNS = 5
SELFTEST = Path(__file__).with_name("selftest_cluster.yaml")


def selftest(flow: str) -> Scenario:
    return next(s for s in load_file(SELFTEST) if s.flow == flow)


@pytest.fixture(scope="module")
def runner(cluster: LocalClusterEnvironment) -> Iterator[Runner]:
    r = Runner(cluster, run_seed=4321, settings=FAST)
    try:
        yield r
    finally:
        r.close()
    assert agent_processes() == [], "an agent outlived the runner"


LEAKY = [
    ("selftest.reread_after_move", "delivery", "1 stream sequence(s) delivered twice to consumer"),
    ("selftest.follower_consumer", "replica_consumers", "kept alive on n1, n2, n3 after close"),
    ("selftest.ack_unseen", "accounting", "the server counts 5 message(s) acked (ack floor 5), but the client was handed only 4"),
]
CLEAN = ["selftest.reread_clean", "selftest.follower_consumer_clean", "selftest.ack_unseen_clean"]


@pytest.mark.parametrize("flow,check,phrase", LEAKY, ids=[f for f, _, _ in LEAKY])
def test_deliberate_cluster_fault_is_caught_every_time(runner: Runner, flow: str, check: str, phrase: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.checks.cluster as cl

    monkeypatch.setattr(cl, "REPLICA_BOUND", 1.0)  # accounting: an ack the client never made stays unmade; no need to wait 5 s
    sc = selftest(flow)
    verdicts = []
    for _ in range(RUNS):
        rec = runner.run(sc)
        verdicts.append(rec.verdict)
        caught = [f for f in rec.findings if f.check == check and phrase in f.summary]
        assert caught, (f"{flow}: no '{check}' finding with {phrase!r}; verdict {rec.verdict} ({rec.reason}); "
                        f"got {[(f.check, f.summary) for f in rec.findings]}")
        assert all(f.evidence for f in caught)
    assert verdicts == ["failed"] * RUNS


@pytest.mark.parametrize("flow", CLEAN)
def test_clean_cluster_twin_passes_every_time(runner: Runner, flow: str) -> None:
    sc = selftest(flow)
    for _ in range(RUNS):
        rec = runner.run(sc)
        assert rec.verdict == "passed", f"{flow}: {rec.reason} {[f.summary for f in rec.findings]}"


def test_the_moved_leader_and_the_replicas_are_on_the_timeline(runner: Runner) -> None:
    rec = runner.run(selftest("selftest.reread_clean"))
    leaders = [e for e in rec.events if e["what"] == "stream leader"]
    assert [e["when"] for e in leaders] == ["before the fault", "after heal"] and all(e["leader"] for e in leaders)
    ev = next(e for e in rec.events if e["what"] == "evidence")
    assert ev["ok"] and "leader" in ev["text"] and "->" in ev["text"]
    assert any(e["what"] == "replicas agree" for e in rec.events)
    (state,) = [e for e in rec.events if e["what"] == "cluster state"]
    assert sorted(state["nodes"]) == ["n1", "n2", "n3"] and state["meta_leader"] in ("n1", "n2", "n3")
    assert all(c["messages"] == 5 and c["last_seq"] == 5 for c in state["nodes"].values()), state


# -- a diverged replica, made for real ----------------------------------------------------------


def _stream(cluster: LocalClusterEnvironment, name: str, purge: bool, interest: bool = False) -> None:
    """An R3 stream with 5 messages (purged if `purge`); `interest`: interest retention, with a
    durable "d" made before the messages (without interest nothing is kept)."""
    async def go() -> None:
        nc = await nats.connect(**cluster.connect_options(direct=True))
        try:
            js = nc.jetstream()
            await Replicated(js, 3).add_stream(StreamConfig(
                name=name, subjects=[f"{name.lower()}.>"],
                retention=RetentionPolicy.INTEREST if interest else RetentionPolicy.LIMITS))
            if interest:
                await js.add_consumer(name, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT))
            deadline = time.monotonic() + 30  # a stream just made (a node just restarted) may still elect its leader
            for i in range(5):
                while True:
                    try:
                        await js.publish(f"{name.lower()}.m", str(i).encode(), timeout=3, headers={"Nats-Msg-Id": f"{name}-{i}"})
                        break
                    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
            if purge:
                await js.purge_stream(name)
        finally:
            await nc.close()

    asyncio.run(go())


def _replicas_step(cluster: LocalClusterEnvironment, name: str) -> list[Any]:
    from harness.checks import CHECKS

    (step,) = [s for s in CHECKS["replicas"].steps if s.phase == AFTER_CLOSE]
    obs_stream = {"name": name, "retention": "limits", "messages": 0, "first_seq": 0, "last_seq": 0, "replicas": 3}
    s = FakeSources(streams=lambda: obs_stream, copy_reads=lambda: cv.copies(cluster, name))
    return step.run(s)


def _diverge(cluster: LocalClusterEnvironment, name: str, purge: bool) -> None:
    """n3 stopped (SIGTERM: its store is whole); for the diverged case the stream is purged on
    the majority and n3 started again cut off from its peers, so that it serves its own old
    copy; for the clean twin n3 starts with its routes and catches up."""
    _stream(cluster, name, purge=False)
    deadline = time.monotonic() + 5
    while (cv.copies(cluster, name).get("n3") or {}).get("messages") != 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    cluster.node("n3").proc.stop()
    if purge:
        async def go() -> None:  # n3 may have led the stream or the meta group: wait out the election
            nc = await nats.connect(**cluster.connect_options(direct=True))
            try:
                deadline = time.monotonic() + 20
                while True:
                    try:
                        await nc.jetstream(timeout=3).purge_stream(name)
                        return
                    except (nats.errors.TimeoutError, nats.js.errors.APIError):
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
            finally:
                await nc.close()

        asyncio.run(go())
        for p in cluster.route_proxies("n3"):
            cluster.toxiproxy.disable(p)
    cluster.restart_node("n3", wait=False)
    deadline = time.monotonic() + 10  # until n3 serves its copy as recovered from its store
    while (cv.copies(cluster, name).get("n3") or {}).get("messages", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("purge", [True, False], ids=["diverged", "clean"])
def test_a_replica_diverged_by_a_purge_while_its_node_was_down_is_caught(cluster: LocalClusterEnvironment, purge: bool,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.checks.cluster as cl

    monkeypatch.setattr(cl, "REPLICA_BOUND", 1.0)  # n3 cannot catch up while cut off: no need to wait 5 s
    for i in range(RUNS):
        name = f"DIV{'P' if purge else 'C'}{i}"
        try:
            _diverge(cluster, name, purge)
            found = _replicas_step(cluster, name)
        finally:
            if not cluster.node_running("n3"):
                cluster.restart_node("n3", wait=False)
            cluster.reset_proxy()  # routes back, readiness asked again
        if purge:
            assert [f.summary for f in found][:2] == [
                f"stream {name}'s replicas disagree on messages: n1=0, n2=0, n3=5",
                f"stream {name}'s replicas disagree on first_seq: n1=6, n2=6, n3=1"], found
            assert "n3: messages=5 first_seq=1 last_seq=5" in found[0].evidence
        else:
            assert found == [], found


# -- an interest stream kept on one replica, made for real ----------------------------------------


def _interest_kept(cluster: LocalClusterEnvironment, name: str, cut: bool) -> None:
    """An R3 interest stream with one durable and 5 messages; n3 stopped (its store whole), every
    message fetched and acked (confirmed) on the majority; n3 started again — cut off from its
    peers for the kept case, so it serves its copy with the 5 messages it never saw acked; with
    its routes for the clean twin, so it catches up and removes them."""
    _stream(cluster, name, purge=False, interest=True)
    deadline = time.monotonic() + 5
    while (cv.copies(cluster, name).get("n3") or {}).get("messages") != 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    cluster.node("n3").proc.stop()

    async def consume() -> None:  # n3 may have led the stream or the consumer: wait out the election
        nc = await nats.connect(**cluster.connect_options(direct=True))
        try:
            js = nc.jetstream(timeout=3)
            deadline, acked = time.monotonic() + 20, 0
            while acked < 5:
                try:
                    sub = await js.pull_subscribe_bind(durable="d", stream=name)
                    for m in await sub.fetch(5 - acked, timeout=2):
                        await m.ack_sync(timeout=3)
                        acked += 1
                except (nats.errors.TimeoutError, nats.js.errors.APIError, nats.errors.NoRespondersError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    asyncio.run(consume())
    if cut:
        for p in cluster.route_proxies("n3"):
            cluster.toxiproxy.disable(p)
    cluster.restart_node("n3", wait=False)
    deadline = time.monotonic() + 10  # until n3 serves a copy (as recovered from its store)
    while cv.copies(cluster, name).get("n3") is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _replica_interest_step(cluster: LocalClusterEnvironment, obs: Observer, name: str, bound: float) -> list[Any]:
    from harness.checks import AFTER_FLOW, CHECKS

    (step,) = [s for s in CHECKS["replica_interest"].steps if s.phase == AFTER_FLOW]
    s = FakeSources(streams=lambda: obs.stream(name), consumer_reads=lambda: obs.consumers(name),
                    copy_reads=lambda: cv.copies(cluster, name), interest_bound=bound)
    return step.run(s)


@pytest.mark.parametrize("cut", [True, False], ids=["kept", "clean"])
def test_an_interest_stream_kept_on_a_replica_is_caught(cluster: LocalClusterEnvironment, cut: bool) -> None:
    obs = Observer(cluster)
    obs.connect()
    try:
        for i in range(RUNS):
            name = f"INT{'K' if cut else 'C'}{i}"
            try:
                _interest_kept(cluster, name, cut)
                # the kept case: n3 cannot catch up while cut off, 1 s is enough; the clean twin
                # gets the check's own bound to remove the messages once it rejoined
                found = _replica_interest_step(cluster, obs, name, 1.0 if cut else 5.0)
            finally:
                if not cluster.node_running("n3"):
                    cluster.restart_node("n3", wait=False)
                cluster.reset_proxy()  # routes back, readiness asked again
            if cut:
                assert [f.check for f in found] == ["replica_interest"], found
                assert f"interest stream {name} still keeps messages on n3 (5)" in found[0].summary, found[0].summary
                assert "n3: messages=5" in found[0].evidence and "n1: messages=0" in found[0].evidence, found[0].evidence
            else:
                assert found == [], found
    finally:
        obs.close()
