"""`harness env up|status|down|check` as a user runs them: real subprocesses, a private run root."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import nats
import pytest

from env_helpers import arun, gone, wait_until
from harness import cli, cli_env

HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=timeout)


def state_of(root: Path) -> dict:
    return json.loads((root / cli_env.STATE_NAME).read_text())


@pytest.fixture
def up(run_root: Path) -> Iterator[subprocess.Popen[str]]:
    """A foreground `harness env up`, ready (its state file names it); killed if a test leaves it."""
    proc = subprocess.Popen(
        [*HARNESS, "env", "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(
            lambda: proc.poll() is not None
            or ((run_root / cli_env.STATE_NAME).exists() and state_of(run_root)["owner_pid"] == proc.pid),
            15,
            "`harness env up` wrote its state file",
        )
        assert proc.poll() is None, proc.communicate()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_env_up_ended_by_a_signal_tears_everything_down(
    up: subprocess.Popen[str], run_root: Path, sig: signal.Signals
) -> None:
    st = state_of(run_root)
    pids = [s["pid"] for s in st["servers"]]
    assert len(pids) == 2 and not any(gone(p) for p in pids)
    up.send_signal(sig)
    out, err = up.communicate(timeout=15)
    assert up.returncode == 0, err
    assert all(gone(p) for p in pids)
    assert not Path(st["rundir"]).exists()
    assert not (run_root / cli_env.STATE_NAME).exists()
    assert st["password"] not in out + err
    assert "client:" in out and "Ctrl-C" in out


def test_env_up_killed_leaves_servers_that_die_and_a_dir_the_next_run_reaps(
    up: subprocess.Popen[str], run_root: Path
) -> None:
    st = state_of(run_root)
    pids = [s["pid"] for s in st["servers"]]
    up.kill()  # SIGKILL: no teardown runs
    up.wait(10)
    # PR_SET_PDEATHSIG: the kernel kills the servers with their owner
    wait_until(lambda: all(gone(p) for p in pids), 5, "servers died with their SIGKILLed owner")
    assert Path(st["rundir"]).exists()  # nobody removed it...
    r = harness("env", "status")
    assert r.returncode == 1
    assert f"its owner, pid {up.pid}, is gone" in r.stdout
    from harness.env.local import LocalEnvironment

    with LocalEnvironment():  # ...until the next run reaps it
        assert not Path(st["rundir"]).exists()


def test_detached_env_up_status_down(run_root: Path) -> None:
    r = harness("env", "up", "--detach")
    assert r.returncode == 0, r.stderr
    st = state_of(run_root)
    try:
        path = run_root / cli_env.STATE_NAME
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert st["detached"] and st["owner_pid"] != os.getpid()
        assert st["password"] not in r.stdout + r.stderr
        assert st["endpoints"]["client_url"] in r.stdout and "harness env down" in r.stdout

        # a user connects with what the state file holds
        async def connect() -> None:
            nc = await nats.connect(
                servers=[st["endpoints"]["client_url"]], user=st["user"], password=st["password"],
                allow_reconnect=False, connect_timeout=2,
            )
            await nc.flush(timeout=2)
            await nc.close()

        arun(connect())

        s = harness("env", "status")
        assert s.returncode == 0, s.stderr
        assert "nats-server /healthz:  ok" in s.stdout and "toxiproxy /version:    ok" in s.stdout
        assert str(path) in s.stdout and st["password"] not in s.stdout

        again = harness("env", "up", "--detach")
        assert again.returncode == 2
        assert again.stderr.splitlines()[0] == (
            f"an environment is already running in the background (pid {st['owner_pid']})"
        )
    finally:
        d = harness("env", "down")
    assert d.returncode == 0, d.stderr
    assert f"stopped the environment of pid {st['owner_pid']}" in d.stdout
    assert gone(st["owner_pid"]) and all(gone(s["pid"]) for s in st["servers"])
    assert not Path(st["rundir"]).exists()
    s = harness("env", "status")
    assert s.returncode == 1 and s.stdout.startswith("no environment running")
    assert harness("env", "down").returncode == 0  # nothing to stop is not an error


def test_status_with_nothing_running(run_root: Path) -> None:
    r = harness("env", "status")
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        f"no environment running (no {run_root / cli_env.STATE_NAME}); start one with `harness env up --detach`"
    ]


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detach"])
def test_env_up_with_a_missing_binary_exits_2_with_one_line(
    run_root: Path, monkeypatch: pytest.MonkeyPatch, detach: bool
) -> None:
    monkeypatch.setenv("NATS_SERVER_BIN", "/nonexistent")
    r = harness("env", "up", *(["--detach"] if detach else []))
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[0] == "NATS_SERVER_BIN=/nonexistent is not an executable file"
    assert lines[1:] == [lines[-1]] and lines[-1].startswith("Hint: ")  # the cause, then one hint
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert [d for d in run_root.iterdir() if d.is_dir()] == []


def test_usage_error_exits_2() -> None:
    r = harness("env", "up", "--nats-port", "99999")
    assert r.returncode == 2 and "port out of range" in r.stderr
    assert harness("env").returncode == 2


def test_env_check_runs_the_smoke_check(run_root: Path) -> None:
    r = harness("env", "check")
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith("env check: ok")
    for step in ("environment up", "publish through proxy", "pull fetch + ack", "environment down"):
        assert step in r.stdout
    assert [d for d in run_root.iterdir() if d.is_dir()] == []


def test_main_maps_harness_errors_to_exit_2(monkeypatch: pytest.MonkeyPatch, capsys, run_root: Path) -> None:
    monkeypatch.setenv("TOXIPROXY_BIN", "/nonexistent")
    assert cli.main(["env", "check"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "TOXIPROXY_BIN=/nonexistent is not an executable file"


def test_command_registry_is_open_for_more_subcommands() -> None:
    parser = cli.build_parser()  # imports the command modules, which register themselves
    assert "env" in cli.COMMANDS
    for action, handler in (
        ("up", cli_env.cmd_env_up), ("status", cli_env.cmd_env_status), ("down", cli_env.cmd_env_down), ("check", cli_env.cmd_env_check)
    ):
        assert parser.parse_args(["env", action]).func is handler
    # run as `python -m harness.cli` (the detached child) it sees the same registry
    r = harness("--help")
    assert r.returncode == 0 and all(name in r.stdout for name in cli.COMMANDS)


def test_an_unexpected_error_is_one_line_and_exit_2_never_1(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run root under /proc cannot be created: not a HarnessError, still not "findings".
    monkeypatch.setenv("NATS_CHAOS_RUN_ROOT", "/proc/nats-chaos-nope/x")
    r = harness("env", "status")
    assert r.returncode == 2, (r.returncode, r.stderr)
    first = r.stderr.splitlines()[0]
    assert first.startswith("harness env: ") and "Error" in first, r.stderr
    assert "Hint:" in r.stderr
