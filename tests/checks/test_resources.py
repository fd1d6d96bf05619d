"""resources: descriptors and the server's connection record after close."""

from __future__ import annotations

from checks_helpers import FakeSources, Series, run_step

from harness.checks import AFTER_CLOSE, Baseline
from harness.checks.resources import find_connection_left, find_leftover_fds


def test_one_more_descriptor_than_before_connect_is_named() -> None:
    before = {0: "/dev/null", 1: "pipe:[1]"}
    (f,) = find_leftover_fds(before, {**before, 7: "socket:[99]"}, "after close")
    assert f.summary == "1 file descriptor(s) left open (after close): 2 before connect, 3 now"
    assert "7 -> socket:[99]" in f.evidence
    assert find_leftover_fds(before, {0: "/dev/null", 5: "socket:[3]"}, "after close") == []  # same count


def test_a_listed_connection_is_left_with_its_record() -> None:
    (f,) = find_connection_left(12, {"cid": 12, "name": "x", "secret": "s", "subscriptions": 3}, "after close")
    assert f.summary == "the server still lists the client's connection cid 12 (after close)"
    assert "subscriptions=3" in f.evidence and "secret" not in f.evidence
    assert find_connection_left(12, None, "after close") == []


def test_step_settles_and_skips_the_connection_when_cid_is_unknown() -> None:
    s = FakeSources(baseline=Baseline(fds={0: "a"}), fd_reads=Series({0: "a", 5: "socket:[1]"}, {0: "a"}), cid=None,
                    connz=Series(AssertionError("asked")))
    assert run_step("resources", AFTER_CLOSE, s) == []
    s = FakeSources(baseline=Baseline(fds={0: "a"}), fd_reads=Series({0: "a"}), cid=3, connz=Series({"cid": 3}))
    (f,) = run_step("resources", AFTER_CLOSE, s)
    assert "cid 3" in f.summary
