"""A run whose owner died is reaped by the next run; the suite's orphan guard catches a deliberate orphan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from env_helpers import gone, wait_until
from harness.env.local import LocalEnvironment, nats_handshake
from harness.env.process import find_binary, free_port, reap_stale_runs


def start_unguarded_nats(port: int) -> subprocess.Popen[bytes]:
    """A real nats-server without PDEATHSIG, in its own session: it would survive us."""
    nats_bin = find_binary("NATS_SERVER_BIN", ["nats-server"], "make setup")
    proc = subprocess.Popen(
        [nats_bin, "-a", "127.0.0.1", "-p", str(port), "-m", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until(lambda: nats_handshake("127.0.0.1", port, timeout=0.2), 5, "unguarded nats-server ready")
    return proc


def dead_pid_record() -> dict:
    """A pid file record of a process that has exited."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    ct = psutil.Process(p.pid).create_time()  # a zombie until waited: still readable
    p.wait()
    return {"pid": p.pid, "create_time": ct}


def stale_rundir(root: Path, name: str, owner: dict, server: subprocess.Popen[bytes]) -> Path:
    d = root / name
    d.mkdir()
    (d / "owner.pid").write_text(json.dumps(owner))
    ct = psutil.Process(server.pid).create_time()
    # the format ManagedProcess writes
    (d / "nats-server.pid").write_text(json.dumps({"pid": server.pid, "create_time": ct, "argv0": "nats-server"}))
    return d


def test_next_run_reaps_live_servers_of_a_dead_owner(run_root: Path) -> None:
    server = start_unguarded_nats(free_port())
    try:
        d = stale_rundir(run_root, "local-stale", dead_pid_record(), server)
        with LocalEnvironment():  # the next run
            assert not d.exists()
            assert server.poll() is not None or gone(server.pid)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(5)


def test_reap_leaves_a_live_owners_run_alone(run_root: Path) -> None:
    server = start_unguarded_nats(free_port())
    try:
        me = psutil.Process()
        d = stale_rundir(run_root, "local-live", {"pid": me.pid, "create_time": me.create_time()}, server)
        assert reap_stale_runs() == []
        assert d.exists() and server.poll() is None
        # a pid reused by another process (create time differs) counts as dead
        (d / "owner.pid").write_text(json.dumps({"pid": me.pid, "create_time": me.create_time() - 100}))
        assert reap_stale_runs() == [server.pid]
        assert not d.exists()
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(5)


def test_reap_resumes_and_kills_a_paused_leftover(run_root: Path) -> None:
    server = start_unguarded_nats(free_port())
    try:
        psutil.Process(server.pid).suspend()
        stale_rundir(run_root, "local-paused", dead_pid_record(), server)
        assert reap_stale_runs() == [server.pid]
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(5)


def test_orphan_guard_catches_a_deliberate_orphan(leftover_servers) -> None:
    before = {p.pid for p in leftover_servers()}
    server = start_unguarded_nats(free_port())
    try:
        assert server.pid in {p.pid for p in leftover_servers()} - before
    finally:
        server.kill()
        server.wait(5)
    assert server.pid not in {p.pid for p in leftover_servers()}


def test_servers_started_from_a_worker_thread_outlive_the_thread() -> None:
    # PDEATHSIG is tied to the forking *thread*: a thread that ends must not take the servers along
    import threading

    env = LocalEnvironment()
    try:
        t = threading.Thread(target=env.start)
        t.start()
        t.join(15)
        with pytest.raises(subprocess.TimeoutExpired):
            env.nats.proc.wait(0.2)  # not SIGKILLed when the starter thread ended
        assert env.toxi.alive() and nats_handshake("127.0.0.1", int(env.client_url.rsplit(":", 1)[1]))
    finally:
        env.stop()


def test_servers_started_from_a_thread_still_die_with_a_killed_owner(run_root: Path) -> None:
    code = (
        "import threading, json, sys\n"
        "from harness.env.local import LocalEnvironment\n"
        "env = LocalEnvironment()\n"
        "t = threading.Thread(target=env.start); t.start(); t.join()\n"
        "print(json.dumps([env.nats.pid, env.toxi.pid]), flush=True)\n"
        "sys.stdin.read()\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(owner.stdout.readline())
        owner.kill()
        owner.wait(5)
        wait_until(lambda: all(gone(p) for p in pids), 5, "servers died with their SIGKILLed owner")
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.communicate(timeout=5)
