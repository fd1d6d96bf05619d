"""The cancel family against a real server: a cancelled waiter that swallows the next message
is caught every time, its clean twin passes every time (nats-py here; nats.go in
test_go_cancel.py), and a continue flow's cancel is shown to take effect."""

from __future__ import annotations

import pytest
from engine_helpers import selftest

from harness.runner import Runner

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
