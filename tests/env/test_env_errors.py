"""Bad input gives one clear line first (then evidence and a hint) and leaves nothing running."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Iterator

import psutil
import pytest

import harness.env.process as process
from harness.env import BACKENDS, make_environment
from harness.env.local import LocalEnvironment
from harness.errors import EnvError, MissingBinaryError, StartupError, ToxiproxyError
from harness.toxiproxy import Toxiproxy


def first_line(err: BaseException) -> str:
    return str(err).splitlines()[0]


@pytest.fixture(autouse=True)
def nothing_left(run_root: Path) -> Iterator[None]:
    """After each test: no child process of ours and no run directory remain."""
    yield
    children = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert children == [], [p.cmdline() for p in children]
    assert [d for d in run_root.iterdir() if d.is_dir()] == []


def fake_binary(tmp_path: Path, name: str, body: str) -> str:
    p = tmp_path / name
    p.write_text(f"#!/bin/sh\n{body}\n")
    p.chmod(0o755)
    return str(p)


def test_nats_server_bin_pointing_at_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_SERVER_BIN", "/nonexistent")
    with pytest.raises(MissingBinaryError) as ei:
        with LocalEnvironment():
            pass
    assert first_line(ei.value) == "NATS_SERVER_BIN=/nonexistent is not an executable file"
    assert "Hint: unset NATS_SERVER_BIN" in str(ei.value)


def test_toxiproxy_bin_pointing_at_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "toxiproxy-server"
    monkeypatch.setenv("TOXIPROXY_BIN", str(missing))
    with pytest.raises(MissingBinaryError) as ei:
        with LocalEnvironment():
            pass
    assert first_line(ei.value) == f"TOXIPROXY_BIN={missing} is not an executable file"


@pytest.mark.parametrize("name", ["nats-server", "toxiproxy-server"])
def test_binary_found_nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    # Neither the override, the project's .bin/ and .venv/, the interpreter's dir nor PATH has it.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("NATS_SERVER_BIN", raising=False)
    monkeypatch.delenv("TOXIPROXY_BIN", raising=False)
    monkeypatch.setattr(process, "PROJECT_ROOT", empty)
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    monkeypatch.setenv("PATH", str(empty))
    if name == "toxiproxy-server":  # let nats-server be found so the toxiproxy lookup is reached
        monkeypatch.setenv("NATS_SERVER_BIN", fake_binary(tmp_path, "nats-server", "exit 1"))
    with pytest.raises(MissingBinaryError) as ei:
        with LocalEnvironment():
            pass
    assert first_line(ei.value).startswith(f"{name} not found (looked in $")
    assert "Hint: run `make setup`" in str(ei.value)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["nats_port", "monitor_port", "api_port", "proxy_port"])
def test_port_already_taken_by_another_program(which: str, backend: str) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(EnvError) as ei:
            with make_environment(backend, **{which: port}):
                pass
    key = which.removesuffix("_port")
    assert first_line(ei.value) == f"port 127.0.0.1:{port} (requested for {key}) is already in use"


def test_toxiproxy_api_unreachable_refused() -> None:
    port = process.free_port()
    with pytest.raises(ToxiproxyError) as ei:
        Toxiproxy(f"http://127.0.0.1:{port}", timeout=1).version()
    assert first_line(ei.value).startswith(f"Toxiproxy API at http://127.0.0.1:{port} unreachable:")
    assert "Connection refused" in first_line(ei.value)


def test_toxiproxy_api_that_never_answers_times_out() -> None:
    with socket.socket() as mute:  # accepts (backlog) but never answers
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        port = mute.getsockname()[1]
        with pytest.raises(ToxiproxyError) as ei:
            Toxiproxy(f"http://127.0.0.1:{port}", timeout=0.3).proxies()
    assert first_line(ei.value).startswith(f"Toxiproxy API at http://127.0.0.1:{port} unreachable:")
    assert "timed out" in first_line(ei.value)


def test_toxiproxy_that_never_serves_its_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOXIPROXY_BIN", fake_binary(tmp_path, "toxiproxy-server", "exec sleep 30"))
    with pytest.raises(StartupError) as ei:
        with LocalEnvironment(ready_timeout=0.5):
            pass
    assert first_line(ei.value) == "toxiproxy-server not ready after 0.5s: no answer on /version"


def test_toxiproxy_that_exits_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = fake_binary(tmp_path, "toxiproxy-server", "echo 'listen tcp: address already in use' >&2; exit 3")
    monkeypatch.setenv("TOXIPROXY_BIN", fake)
    with pytest.raises(StartupError) as ei:
        with LocalEnvironment():
            pass
    assert first_line(ei.value) == "toxiproxy-server exited during start-up (status 3) before answer on /version"
    assert "address already in use" in str(ei.value)  # the log tail is the evidence
    assert "Hint: a port it needs is taken" in str(ei.value)


def test_toxiproxy_api_gone_mid_run() -> None:
    with LocalEnvironment() as env:
        env.toxi.kill()
        with pytest.raises(ToxiproxyError) as ei:
            env.toxiproxy.add_toxic(env.proxy_name, "latency", latency=10)
        assert first_line(ei.value).startswith(f"Toxiproxy API at {env.toxiproxy_url} unreachable:")
        assert "Hint: is toxiproxy-server running?" in str(ei.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_port_requested_twice(backend: str) -> None:
    # One port claim for both backends (env/base.py), checked before anything starts (compose:
    # before any Docker call, so this runs without Docker too).
    port = process.free_port()
    with pytest.raises(EnvError) as ei:
        with make_environment(backend, nats_port=port, proxy_port=port):
            pass
    assert first_line(ei.value) == f"the same port is requested twice: nats={port}, proxy={port}"


@pytest.mark.parametrize("which", ["nats_port", "proxy_port"])
def test_port_taken_after_the_check(monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    # the race the up-front check cannot close: another program binds the port in between
    monkeypatch.setattr(process, "port_in_use", lambda port: False)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(EnvError) as ei:
            with LocalEnvironment(**{which: port}):
                pass
    if which == "proxy_port":
        assert first_line(ei.value) == f"port 127.0.0.1:{port} (for proxy) is already in use"
    else:
        # the port asked for is kept (never moved): the failed bind is the one-line cause
        assert first_line(ei.value) == f"nats-server could not listen on 127.0.0.1:{port}: address already in use"
        assert "Hint: a port it needs is taken by another program" in str(ei.value)


@pytest.mark.parametrize("var", ["NATS_SERVER_BIN", "TOXIPROXY_BIN"])
def test_setup_with_an_override_that_is_not_executable_exits_2_with_one_line(var: str) -> None:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(["bash", str(root / "scripts/setup.sh")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, var: "/nonexistent/bin"}, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == f"setup: {var}=/nonexistent/bin is not executable" and lines[1].startswith("Hint: "), r.stderr
