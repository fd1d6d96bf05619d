"""The cancel family against a real server: a cancelled waiter that swallows the next message
is caught every time, its clean twin passes every time, on both agents (nats-py, then nats.go)."""

from __future__ import annotations

import shutil
from typing import Iterator

import pytest
from engine_helpers import FAST, selftest

from harness.env.local import LocalEnvironment
from harness.runner import Runner
from harness.targets import ClientTarget, cache_root, nats_go
from harness.targets.nats_go import NatsGo

RUNS = 5


def test_a_cancelled_waiter_that_swallows_the_next_message_is_caught_every_time(runner: Runner) -> None:
    sc = selftest("selftest.cancel_swallows_next")
    assert sc.fault == "cancel.task"
    for _ in range(RUNS):
        rec = runner.run(sc)
        caught = [f for f in rec.findings if f.check == "delivery" and "published after the waiting call ended never reached" in f.summary]
        assert rec.verdict == "failed" and caught, (rec.verdict, rec.reason, [(f.check, f.summary) for f in rec.findings])
        assert "after-0" in caught[0].summary and "source.next (cancelled)" in caught[0].evidence


def test_its_clean_twin_passes_every_time(runner: Runner) -> None:
    sc = selftest("selftest.cancel_clean")
    for _ in range(RUNS):
        rec = runner.run(sc)
        assert rec.verdict == "passed" and rec.findings == (), (rec.reason, [f.summary for f in rec.findings])
        ev = [e for e in rec.events if e["what"] == "evidence"]
        assert ev and ev[0]["ok"] and "ended with a cancellation" in ev[0]["text"]


# -- the same self-tests on nats.go (the Go agent's flows_selftest_cancel.go) --------------

go_only = pytest.mark.skipif(shutil.which("go") is None, reason="the Go toolchain (go) is not on PATH: the Go agent cannot be built")


@pytest.fixture(scope="module")
def go_runner(env: LocalEnvironment) -> Iterator[Runner]:
    cmd = NatsGo().ensure(ClientTarget("nats.go", nats_go.DEFAULT_VERSION, "release"), cache_root())[1]
    r = Runner(env, run_seed=1234, settings=FAST, agent_command=cmd)
    try:
        yield r
    finally:
        r.close()


@go_only
def test_go_a_cancelled_waiter_that_swallows_the_next_message_is_caught_every_time(go_runner: Runner) -> None:
    for _ in range(RUNS):
        rec = go_runner.run(selftest("selftest.cancel_swallows_next"))
        caught = [f for f in rec.findings if f.check == "delivery" and "published after the waiting call ended never reached" in f.summary]
        assert rec.verdict == "failed" and caught, (rec.verdict, rec.reason, [(f.check, f.summary) for f in rec.findings])


@go_only
def test_go_its_clean_twin_passes_every_time(go_runner: Runner) -> None:
    for _ in range(RUNS):
        rec = go_runner.run(selftest("selftest.cancel_clean"))
        assert rec.verdict == "passed" and rec.findings == (), (rec.reason, [f.summary for f in rec.findings])
        ev = [e for e in rec.events if e["what"] == "evidence"]
        assert ev and ev[0]["ok"] and "ended with a cancellation" in ev[0]["text"]
