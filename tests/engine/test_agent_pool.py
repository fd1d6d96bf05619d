"""The spare agent pool: each agent handed out once, a dead spare reaped, a failed start leaves nothing."""

from __future__ import annotations

import os
import sys
import threading
import time

import psutil
import pytest

from harness.agent.runner_side import AgentError, AgentPool, AgentProcess
from harness.targets import AgentCommand


def _agents_alive() -> list[psutil.Process]:
    """This process's live agent children (zombies are dead)."""
    out = []
    for p in psutil.Process(os.getpid()).children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "harness.agent" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_a_spare_that_died_while_waiting_is_reaped_and_replaced() -> None:
    pool = AgentPool()
    first = pool.get()
    try:
        spare = pool._spare
        assert spare is not None
        spare.proc.kill()
        spare.proc.wait(5)
        second = pool.get()
        try:
            assert second is not spare and second.alive() and second.hello is not None
            assert spare.proc.stdout.closed  # reaped: its pipes closed, not left to the garbage collector
        finally:
            second.kill()
    finally:
        first.kill()
        pool.close()
    assert _agents_alive() == []


def test_agents_taken_at_once_from_one_pool_are_all_different() -> None:
    pool = AgentPool()
    got: list[AgentProcess] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def take() -> None:
        try:
            start.wait(10)
            got.append(pool.get())
        except BaseException as e:  # handed to the test thread
            failures.append(e)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not failures, failures
        assert len({a.proc.pid for a in got}) == 4
    finally:
        for a in got:
            a.kill()
        pool.close()
    assert _agents_alive() == []


def test_an_agent_that_never_starts_is_not_left_behind() -> None:
    # exits at once without its hello: the caller gets an error, and no process stays behind
    pool = AgentPool(AgentCommand((sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)")))
    t = time.monotonic()
    with pytest.raises(AgentError):
        pool.get()
    assert time.monotonic() - t < 15
    pool.close()
    assert [p for p in psutil.Process(os.getpid()).children()
            if p.status() != psutil.STATUS_ZOMBIE and "sys.exit(3)" in " ".join(p.cmdline())] == []
