"""The schedule on hand-built values: how many in flight, in which order, and the serial lane."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from types import SimpleNamespace

from harness.schedule import (
    MAX_WORKERS, Lane, Machine, choose_workers, declared_seconds, judged_alone, last_durations, may_start_clusters,
    needs_alone, order,
)

GIB = 2**30


def test_scenarios_in_flight_follow_the_scarcest_resource() -> None:
    roomy = Machine(cores=2, memory_available=20 * GIB, fd_limit=20000, ports=28232)
    c = choose_workers(roomy)
    assert (c.workers, c.limited_by) == (10, "2 cores x 5")
    assert "10 scenarios in flight (limited by 2 cores x 5" in c.describe()
    assert choose_workers(roomy, scenarios=3).workers == 3
    assert choose_workers(Machine(2, 20 * GIB, 1024, 28232)).limited_by == "file descriptors"
    assert choose_workers(Machine(2, 1 * GIB, 20000, 28232)).workers == 2  # half of 1 GiB at 200 MB each
    assert choose_workers(Machine(64, 500 * GIB, 1 << 20, 28232)).workers == MAX_WORKERS
    assert choose_workers(Machine(1, 0, 0, 0)).workers == 1  # never none


def _sc(sid: str, hold: float = 1.5, timeout: float = 15.0, rounds: int = 1, tags: tuple = ()) -> SimpleNamespace:
    return SimpleNamespace(id=sid, hold=hold, timeout=timeout, rounds=rounds, tags=tags)


def test_longest_first_by_last_duration_else_declared() -> None:
    scs = [_sc("a"), _sc("b"), _sc("c", hold=3.0), _sc("d"), _sc("e")]
    durations = {"a": 2.0, "b": 12.0, "d": 2.0, "e": 30.0}
    # c never ran: its declared 3 + 15 s puts it between e and b; a and d tie and keep their order
    assert order(scs, durations) == [4, 2, 1, 0, 3]
    assert declared_seconds(_sc("s", hold=0.5, timeout=10, rounds=40)) == 30.0
    # a scenario declared alone goes to the serial tail, however long
    assert order([_sc("a"), _sc("b", tags=("alone",)), _sc("c")], {"a": 1.0, "b": 50.0, "c": 2.0}) == [2, 0, 1]


def _journal(run_dir: Path, records: dict[str, float], whole: bool = True) -> None:
    run_dir.mkdir(parents=True)
    recs = [{"id": i, "timings": {"wall": w}} for i, w in records.items()]
    if whole:
        (run_dir / "journal.json").write_text(json.dumps({"header": {}, "records": recs}))
    else:  # a killed run: only the lines, the last one cut short
        lines = [json.dumps({"kind": "header"})] + [json.dumps({"kind": "record", **r}) for r in recs]
        (run_dir / "journal.jsonl").write_text("\n".join(lines) + '\n{"kind": "rec')


def test_last_durations_take_the_newest_run_of_each_scenario(tmp_path: Path) -> None:
    _journal(tmp_path / "old", {"a": 9.0, "b": 9.0})
    _journal(tmp_path / "new", {"a": 1.0}, whole=False)
    _journal(tmp_path / "running", {"b": 99.0})
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "journal.json").write_text("{not json")
    now = time.time()
    for age, d in enumerate(("running", "new", "junk", "old")):
        os.utime(tmp_path / d, (now - age, now - age))
    assert last_durations(tmp_path, exclude="running") == {"a": 1.0, "b": 9.0}
    assert last_durations(tmp_path / "missing") == {}


def test_only_an_undecided_heartbeat_gap_sends_a_scenario_to_the_lane() -> None:
    undecided = {"what": "heartbeat gap: undecided", "duration": 2.0, "queued": 1.5, "cpu_busy": 0.98}
    machine = {"what": "heartbeat gap: machine", "duration": 1.0, "queued": 0.9, "cpu_busy": 0.0}
    assert needs_alone({"verdict": "failed", "events": [machine, undecided]})
    assert not needs_alone({"verdict": "passed", "events": [machine]})
    assert not needs_alone({"verdict": "error", "events": [undecided]})  # the environment broke: nothing to judge
    first = {"verdict": "failed", "findings": [{"summary": "event loop spinning"}], "timings": {"wall": 4.0}}
    rec = judged_alone(first, {"id": "x", "verdict": "passed", "findings": []})
    assert rec["verdict"] == "passed" and rec["lane"]["first_verdict"] == "failed"
    assert rec["lane"]["first_findings"] == ["event loop spinning"] and rec["lane"]["first_wall"] == 4.0


def test_a_scenario_declared_alone_runs_in_the_lane_at_once(tmp_path: Path) -> None:
    from harness.schedule import in_lane

    lane = Lane(tmp_path)
    rec = in_lane(lane, lambda: {"id": "x", "verdict": "passed", "events": []}, alone=True)
    assert rec["verdict"] == "passed" and rec["lane"]["first_verdict"] == "declared"
    assert "lane" not in in_lane(lane, lambda: {"id": "x", "verdict": "passed", "events": []})
    assert "lane" not in in_lane(None, lambda: {"id": "x", "verdict": "passed", "events": []}, alone=True)  # in-process


def _hold(directory: str, how: str, log: "multiprocessing.Queue[str]", seconds: float) -> None:
    lane = Lane(Path(directory))
    with lane.shared() if how == "shared" else lane.alone():
        log.put(f"{how} in")
        time.sleep(seconds)
        log.put(f"{how} out")


def _locked(path: Path) -> bool:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_the_lane_runs_a_scenario_alone_once_the_others_finished(tmp_path: Path) -> None:
    log: "multiprocessing.Queue[str]" = multiprocessing.Queue()
    ctx = multiprocessing.get_context("fork")
    first = [ctx.Process(target=_hold, args=(str(tmp_path), "shared", log, 0.6)) for _ in range(2)]
    for p in first:
        p.start()
    assert [log.get(timeout=10) for _ in range(2)] == ["shared in", "shared in"]  # both in flight at once
    alone = ctx.Process(target=_hold, args=(str(tmp_path), "alone", log, 0.3))
    alone.start()
    deadline = time.monotonic() + 10
    while not _locked(tmp_path / ".schedule-gate.lock"):  # the exclusive hold is waiting behind the two
        assert time.monotonic() < deadline, "the exclusive hold never took the gate"
        time.sleep(0.01)
    # a scenario that starts now waits behind it
    late = ctx.Process(target=_hold, args=(str(tmp_path), "shared", log, 0.0))
    late.start()
    for p in (*first, alone, late):
        p.join(10)
        assert p.exitcode == 0
    got = [log.get(timeout=1) for _ in range(6)]
    assert got == ["shared out", "shared out", "alone in", "alone out", "shared in", "shared out"]
    Lane.remove_files(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_run_with_cluster_scenarios_budgets_each_worker_for_a_cluster_too() -> None:
    m = Machine(cores=8, memory_available=3 * GIB, fd_limit=20000, ports=28232)
    assert choose_workers(m).workers == 7  # half of 3 GiB at 200 MB each
    c = choose_workers(m, clusters=True)
    assert (c.workers, c.limited_by) == (5, "memory (with a cluster each)")  # at 200 + 80 MB each
    assert choose_workers(Machine(2, 20 * GIB, 20000, 28232), clusters=True).workers == 10  # cores still rule


def test_a_run_may_start_clusters_from_its_option_or_its_files(tmp_path: Path) -> None:
    single = tmp_path / "single.yaml"
    single.write_text("matrix:\n  - name: f\n    flows: [next.fetch]\n    faults: [none]\n")
    clustered = tmp_path / "clustered.yaml"
    clustered.write_text("defaults:\n  cluster: 3\nmatrix:\n  - name: f\n    flows: [next.fetch]\n    faults: [none]\n")
    assert not may_start_clusters(None, [str(single)])
    assert may_start_clusters("3", [str(single)])  # --cluster 3 puts every scenario on one
    assert not may_start_clusters("1", [str(single)])
    assert may_start_clusters(None, [str(single), f"{clustered}::next.fetch[none]"])  # a node id's file
    assert may_start_clusters(None, [str(tmp_path)])  # a folder holding one
    assert not may_start_clusters(None, [str(tmp_path / "missing.yaml")])  # reported when collected
    assert not may_start_clusters("three", [str(single)])  # a settings error, reported as one
