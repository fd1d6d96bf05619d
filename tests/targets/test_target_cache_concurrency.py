"""The target cache under concurrency: runs installing the same target at once take turns.

xdist workers, a matrix's parallel cells and a second terminal all install into the same
`.cache/targets`. Without a lock, two installs of one release both built it, and the second
moved the first's install away under it (or failed to rename onto it).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.targets import LOCKS, TargetError, atomic_install, install_lock

WORKERS = 8


def _slow_build(tmp: Path) -> None:
    """A build that takes long enough for every worker to arrive while it runs."""
    tmp.mkdir()
    (tmp / "agent").write_text(str(os.getpid()))
    with open(tmp.parent / "builds.log", "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(0.5)


def _install(dest: str, start: "multiprocessing.synchronize.Barrier", out: "multiprocessing.Queue[str]") -> None:
    try:
        start.wait(30)
        built = atomic_install(Path(dest), _slow_build, "fp")
        # what an agent would do right away: use the install
        out.put(f"{'built' if built else 'reused'} {Path(dest, 'agent').read_text()}")
    except BaseException as e:  # reported to the test, not lost in a child
        out.put(f"error {type(e).__name__}: {e}")


def test_runs_installing_the_same_target_at_once_build_it_once(tmp_path: Path) -> None:
    dest = tmp_path / "nats-py-9.9.9"
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_install, args=(str(dest), start, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    errors = [r for r in results if r.startswith("error")]
    assert not errors, errors
    builder = (tmp_path / "builds.log").read_text().split()
    assert len(builder) == 1, f"built {len(builder)} times"
    assert sorted(r.split()[0] for r in results) == ["built"] + ["reused"] * (WORKERS - 1)
    assert {r.split()[1] for r in results} == set(builder)  # every run used the one install
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCKS, "builds.log", "nats-py-9.9.9"]


def test_an_install_that_died_holding_the_lock_is_taken_over(tmp_path: Path) -> None:
    dest = tmp_path / "nats-go-v9.9.9"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from harness.targets import install_lock\n"
        "dest = Path(sys.argv[1])\n"
        "with install_lock(dest):\n"
        "    (dest.parent / f'.{dest.name}.tmp-1-abc').mkdir()\n"
        "    print('building', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(dest)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "building"
        with pytest.raises(TargetError) as e:
            atomic_install(dest, _slow_build, "fp", wait=0.2)
        assert "still being installed by another run" in e.value.summary and f"pid {holder.pid}" in e.value.evidence
        holder.kill()  # dies mid-build: the kernel drops its lock
        holder.wait(5)
        assert atomic_install(dest, _slow_build, "fp", wait=5) is True
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCKS, "builds.log", "nats-go-v9.9.9"]  # its .tmp- gone
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(5)
        holder.stdout.close()


def test_the_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    # flock locks an open file description: two threads (or a matrix in one process) take turns
    dest = tmp_path / "x"
    with install_lock(dest):
        with pytest.raises(TargetError):
            with install_lock(dest, wait=0.1):
                pass
