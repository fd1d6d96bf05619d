"""The reports directory under concurrency: each run its own directory, `latest` always there.

Runs started in the same second with the same seed and target used to share one run
directory (one journal.jsonl written by two runs); `latest` was replaced by unlink + symlink,
so a reader could find it missing and a second writer failed on the first one's link.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

from harness.journal import claim_run_dir, point_latest

WORKERS = 8


def _claim(reports: str, start: "multiprocessing.synchronize.Barrier", out: "multiprocessing.Queue[str]") -> None:
    try:
        start.wait(30)
        out.put(claim_run_dir(Path(reports), "20261204-120000-11-nats-py"))
    except BaseException as e:
        out.put(f"error {type(e).__name__}: {e}")


def test_runs_started_at_once_with_one_id_each_get_a_directory_of_their_own(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(str(tmp_path), start, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    try:
        ids = [out.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    base = "20261204-120000-11-nats-py"
    assert sorted(ids) == sorted([base] + [f"{base}-{n}" for n in range(2, WORKERS + 1)])
    assert sorted(os.listdir(tmp_path)) == sorted(ids)


def _point(reports: str, n: int, start: "multiprocessing.synchronize.Barrier", out: "multiprocessing.Queue[str]") -> None:
    try:
        run = Path(reports) / f"run-{os.getpid()}"
        run.mkdir()
        start.wait(30)
        for _ in range(n):
            point_latest(run)
        out.put("ok")
    except BaseException as e:
        out.put(f"error {type(e).__name__}: {e}")


def test_latest_is_never_missing_while_runs_repoint_it(tmp_path: Path) -> None:
    first = tmp_path / "run-first"
    first.mkdir()
    point_latest(first)
    missing: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            if not (tmp_path / "latest").is_dir():  # follows the link: it names a run directory
                missing.append("latest missing or dangling")

    t = threading.Thread(target=reader)
    t.start()
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_point, args=(str(tmp_path), 300, start, out)) for _ in range(WORKERS)]
    try:
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
    finally:
        stop.set()
        t.join(10)
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    assert results == ["ok"] * WORKERS
    assert not missing, f"{len(missing)} reads found no latest"
    assert (tmp_path / "latest").resolve().parent == tmp_path
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".latest")]  # no private links left
