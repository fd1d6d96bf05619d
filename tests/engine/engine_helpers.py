"""Helpers shared by the engine's tests."""

from __future__ import annotations

from pathlib import Path

import psutil

from harness.runner import Settings
from harness.scenario import Scenario, load_file

HERE = Path(__file__).parent
SELFTEST = HERE / "selftest.yaml"
# Short budgets keep leaky cases fast (goleak's trick); clean cases return at once anyway.
FAST = Settings(leak_grace=0.5, stuck_after=1.5, recovery_bound=6.0, consumer_wait=7.0)


def selftest(flow: str) -> Scenario:
    return next(s for s in load_file(SELFTEST) if s.flow == flow)


def agent_processes() -> list[psutil.Process]:
    """Live agent processes started by this test process."""
    me = psutil.Process()
    out = []
    for p in me.children(recursive=True):
        try:
            cmd = p.cmdline()
            is_agent = "harness.agent" in " ".join(cmd) or (bool(cmd) and cmd[0].endswith("/agent"))  # Python or Go agent
            if is_agent and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out
