"""Nothing outlives a run with many scenarios in flight: ended by itself, by Ctrl-C or by
SIGKILL. Real `harness run -n 10`, real servers; at the end, no process of the run is left,
none of its ports still listens, and no process holds a file of its run directories."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

HARNESS = Path(sys.executable).with_name("harness")
WORKERS = 10  # what -n auto chooses on 2 cores (harness/schedule.py)


def _scenarios(seconds: float) -> str:
    entries = "".join(f"  - name: wait{i}\n    variant: w{i}\n    flows: [selftest.yield]\n" for i in range(WORKERS))
    return f"defaults:\n  timeout: {seconds + 10}\n  params: {{seconds: {seconds}}}\nmatrix:\n{entries}"


def _run(tmp_path: Path, seconds: float, run_root: Path) -> subprocess.Popen[str]:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(_scenarios(seconds))
    env = dict(os.environ, NATS_CHAOS_RUN_ROOT=str(run_root))
    return subprocess.Popen([str(HARNESS), "run", "--seed", "5", "-n", str(WORKERS)], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,
                            # as a terminal's foreground job: Ctrl-C at its default (a script's
                            # background job would inherit SIGINT ignored)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _in_flight(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[list[psutil.Process], set[int]]:
    """Wait (bounded) until every worker runs its scenario: the run's processes and listening ports."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        procs = psutil.Process(proc.pid).children(recursive=True)
        flows = [p for p in procs if _cmd(p).endswith("-m harness.agent")]
        if len([p for p in procs if "toxiproxy" in _cmd(p)]) >= WORKERS and len(flows) >= WORKERS:
            return procs, _ports(procs)
        time.sleep(0.2)
    raise AssertionError(f"{WORKERS} scenarios never were in flight at once")


def _cmd(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def _ports(procs: list[psutil.Process]) -> set[int]:
    out = set()
    for p in procs:
        try:
            out |= {c.laddr.port for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
    return out


def _assert_nothing_left(procs: list[psutil.Process], ports: set[int], run_root: Path, tmp_path: Path,
                         lock_files: bool = False) -> None:
    _, alive = psutil.wait_procs(procs, timeout=15)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [_cmd(p) for p in alive]
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert not ports & listening, f"ports of the run still listen: {sorted(ports & listening)}"
    holders = []
    for p in psutil.process_iter():
        try:
            holders += [(p.pid, f.path) for f in p.open_files()
                        if f.path.startswith((str(run_root), str(tmp_path / "reports")))]
        except psutil.Error:
            continue
    assert not holders, f"files of the run still open: {holders}"
    # (a SIGKILLed controller cannot remove the serial lane's empty lock files: flock holds
    # nothing once its holders are gone, so they are inert)
    if not lock_files:
        assert not list((tmp_path / "reports").glob("*/.schedule-*.lock")), "the serial lane's lock files were left"


def test_a_run_with_many_in_flight_leaves_nothing_behind(tmp_path: Path) -> None:
    run_root = tmp_path / "runs"
    proc = _run(tmp_path, 4.0, run_root)
    try:
        procs, ports = _in_flight(proc)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out[-3000:]
    assert f"passed={WORKERS} " in out
    _assert_nothing_left(procs, ports, run_root, tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_run_with_many_in_flight_stopped_leaves_nothing_behind(tmp_path: Path, sig: int) -> None:
    run_root = tmp_path / "runs"
    proc = _run(tmp_path, 30.0, run_root)
    try:
        procs, ports = _in_flight(proc)
        assert len(ports) >= 2 * WORKERS  # each worker's nats-server and Toxiproxy at least
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C reaches the terminal's whole process group
        else:
            proc.send_signal(sig)  # the controller alone dies: its workers and their servers must follow
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    _assert_nothing_left(procs, ports, run_root, tmp_path, lock_files=sig == signal.SIGKILL)
