"""Run directories under concurrency: visible only with their owner, reaped only when abandoned.

Every harness process on a machine (xdist workers, a matrix's parallel runs) reaps the
others' abandoned run directories. Before the fix, a reaper could read an owner.pid that
was created but not yet written, take the owner for dead, and remove a live run's
directory (`[Errno 2] No such file or directory: '<runs root>/local-…/jetstream'`).
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import threading
import time
import traceback
from pathlib import Path

import psutil
import pytest

from harness.env import process
from harness.env.process import PROJECT_ROOT, free_port, new_rundir, reap_stale_runs, remove_rundir
from test_env_reaping import dead_pid_record, start_unguarded_nats, stale_rundir

WORKERS = 8
SECONDS = 3.0


def _churn(seconds: float, out: "multiprocessing.Queue[tuple[int, dict[str, int]]]") -> None:
    """Create, use and remove run directories in a tight loop (each creation reaps too)."""
    errors: collections.Counter[str] = collections.Counter()
    cycles = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            d = new_rundir("local")
            (d / "jetstream").mkdir()  # what LocalEnvironment does first, and what failed
            (d / "nats-server.conf").write_text("listen: 127.0.0.1:4222\n")
            if json.loads((d / "owner.pid").read_text())["pid"] != os.getpid():
                errors["owner.pid names another process"] += 1
            remove_rundir(d)
            cycles += 1
        except Exception as e:  # counted, not raised: the test reports every kind at once
            ours = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith(str(PROJECT_ROOT))]
            where = ours[-1]  # the line of ours that failed, not pathlib's
            why = e.strerror if isinstance(e, OSError) else str(e)  # no paths: one key per kind
            errors[f"{type(e).__name__} at {os.path.basename(where.filename)}:{where.lineno}: {why}"] += 1
    out.put((cycles, dict(errors)))


def test_many_processes_creating_and_reaping_run_directories_never_collide(run_root: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter each, like separate runs
    out = ctx.Queue()
    procs = [ctx.Process(target=_churn, args=(SECONDS, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=SECONDS + 60) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    cycles = sum(n for n, _ in results)
    errors: collections.Counter[str] = collections.Counter()
    for _, e in results:
        errors.update(e)
    assert not errors, f"{sum(errors.values())} errors in {cycles} cycles: {dict(errors)}"
    assert cycles >= WORKERS, "the workers did not get to run"
    assert sorted(os.listdir(run_root)) == [], "run directories left behind"


def test_a_run_directory_is_published_with_its_owner(run_root: Path) -> None:
    d = new_rundir("local")
    me = psutil.Process()
    assert json.loads((d / "owner.pid").read_text()) == {"pid": me.pid, "create_time": me.create_time()}
    assert d.name.startswith("local-") and sorted(os.listdir(run_root)) == [d.name]  # no staging left
    remove_rundir(d)


def test_an_owner_record_being_written_is_not_a_dead_owner(run_root: Path) -> None:
    # the window that removed live runs: owner.pid created, not yet written
    d = run_root / "local-young"
    d.mkdir()
    (d / "owner.pid").write_text("")
    (run_root / ".new-local-young").mkdir()  # staging, owner.pid not yet there
    assert reap_stale_runs() == []
    assert d.exists() and (run_root / ".new-local-young").exists()


def test_a_directory_without_owner_is_reaped_only_past_the_bound(
    run_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = run_root / "local-ownerless"
    d.mkdir()
    reap_stale_runs()
    assert d.exists()
    monkeypatch.setattr(process, "ABANDONED_AFTER", 0.0)
    reap_stale_runs()
    assert not d.exists()


def test_a_staging_directory_of_a_dead_owner_is_reaped(run_root: Path) -> None:
    server = start_unguarded_nats(free_port())
    try:
        stale_rundir(run_root, ".new-local-crashed", dead_pid_record(), server)
        assert reap_stale_runs() == [server.pid]
        assert os.listdir(run_root) == []
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(5)


def test_two_reapers_never_work_on_the_same_directory(run_root: Path) -> None:
    # the claim is a rename: one reaper wins each abandoned directory, the others move on
    server = start_unguarded_nats(free_port())
    try:
        stale_rundir(run_root, "local-abandoned", dead_pid_record(), server)
        ended: list[int] = []
        failures: list[BaseException] = []
        start = threading.Barrier(WORKERS)

        def reaper() -> None:
            try:
                start.wait(10)
                ended.extend(reap_stale_runs())
            except BaseException as e:  # handed to the test thread
                failures.append(e)

        threads = [threading.Thread(target=reaper) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not failures, failures
        assert ended == [server.pid]
        assert os.listdir(run_root) == []
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(5)
