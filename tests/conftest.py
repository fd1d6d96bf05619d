"""Suite-wide guard: no nats-server or toxiproxy-server started by this test session may outlive it.

Every process this session starts inherits `NATS_CHAOS_TEST_SESSION` (set here, at
import, before anything is spawned). At the end of the session we look for live
processes whose executable is one of the project's server binaries *and* that carry
this session's mark: other sessions (another engineer's suite, a `harness env up` in a
terminal) use the same binaries and must not fail this run. Found ones are reported,
killed, and the run fails.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import psutil
import pytest

# pytest allows `pytest_plugins` only in the top-level conftest; the engine's tests use pytester.
pytest_plugins = ["pytester"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SESSION_MARK = "NATS_CHAOS_TEST_SESSION"
SERVER_NAMES = frozenset({"nats-server", "toxiproxy-server"})
# Children die by PDEATHSIG or SIGTERM asynchronously: give them a moment, not a sleep.
ORPHAN_GRACE = 3.0

# setdefault: xdist workers and subprocesses keep the controller's mark.
os.environ.setdefault(SESSION_MARK, uuid.uuid4().hex)


def leftover_servers(mark: str | None = None) -> list[psutil.Process]:
    """Live project server processes (nats-server, toxiproxy-server) started by this session."""
    mark = mark or os.environ[SESSION_MARK]
    root = str(PROJECT_ROOT) + os.sep
    found = []
    for p in psutil.process_iter(["name", "exe"]):
        try:
            exe = p.info["exe"] or ""
            if os.path.basename(exe) not in SERVER_NAMES or not exe.startswith(root):
                continue  # only this project's binaries, not every nats-server on the machine
            if p.status() == psutil.STATUS_ZOMBIE:
                continue  # dead, waiting for its parent to reap it
            if p.environ().get(SESSION_MARK) != mark:
                continue  # another session's process
            found.append(p)
        except psutil.Error:
            continue
    return found


def wait_no_leftover_servers(timeout: float = ORPHAN_GRACE) -> list[psutil.Process]:
    """Poll until no leftover server remains or the deadline passes; return what is left."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    left = leftover_servers()
    while left and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
        left = leftover_servers()
    return left


@pytest.fixture(name="leftover_servers")
def _leftover_servers_fixture():
    """The orphan detector itself, so tests can check it catches a deliberate orphan."""
    return leftover_servers


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # xdist worker: the controller checks once, after every worker is done
    left = wait_no_leftover_servers()
    if not left:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"ORPHANS: {len(left)} server process(es) started by this test session are still alive:"]
    for p in left:
        try:
            lines.append(f"  pid {p.pid}: {' '.join(p.cmdline())}")
            p.resume()
            p.kill()
        except psutil.Error:
            pass
    lines.append("  (killed now; a test or the environment code failed to stop them)")
    if tr is not None:
        tr.write_line("")  # the progress line may still be open
    for line in lines:
        if tr is not None:
            tr.write_line(line, red=True, bold=True)
        else:
            print(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
