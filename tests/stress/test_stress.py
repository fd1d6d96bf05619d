"""Runs and workers never trip over each other: the harness under concurrency, bounded.

At once, on one checkout, sharing one run root and one (empty at first) target cache:
- CHURNERS processes start and stop local environments in a tight loop (run directories,
  ports, reaping), each round also resolving the target (the first round installs it: all of
  them at once);
- one process keeps starting an environment in a child it SIGKILLs (a crashed run whose
  run directory the others must reap, and only that one);
- two `harness run -n 2` with the same seed (the same run id, claimed twice) and a
  `harness matrix -j 2` over two nats-py releases (one installed by the matrix itself).
Then: 0 errors anywhere, every scenario ran with no `error` verdict, and nothing is left
behind (processes, run directories, listening ports of any of them). Images: the local
backend builds none (compose has its own tests).
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from harness.env.local import LocalEnvironment, nats_handshake
from harness.env.process import reap_stale_runs
from harness.targets.resolve import resolve_target

CHURNERS = 8
HARD_CAP = 150.0  # seconds: churners stop here even if a run hangs (the runs are bounded too)
SEED = 4242
OTHER_RELEASE = "nats-py==2.15.0"  # the matrix's second cell installs it while everything else runs
SCENARIOS = """\
defaults:
  timeout: 8
matrix:
  - name: self
    flows: [selftest.clean_task, selftest.keep_messages]
  - name: kv
    flows: [kv.get]
    faults: [none, disconnect.reset_peer, disconnect.restart]
    triggers: [in_call]
"""
SCENARIO_COUNT = 5
HARNESS = Path(sys.executable).with_name("harness")
SESSION_MARK = "NATS_CHAOS_TEST_SESSION"


def _why(e: BaseException) -> str:
    first = (str(e).splitlines() or [""])[0]
    return f"{type(e).__name__}: {first[:160]}"


def _churn(stop: "multiprocessing.synchronize.Event", out: "multiprocessing.Queue[dict]") -> None:
    """Environments up and down until told to stop (or the hard cap)."""
    errors: collections.Counter[str] = collections.Counter()
    rounds, ports = 0, set()
    deadline = time.monotonic() + HARD_CAP
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            resolve_target(None, None)  # first round: installed by everyone at once
            with LocalEnvironment() as env:
                ports |= set(env.ports.values())
                if not nats_handshake("127.0.0.1", env.ports["proxy"]):
                    errors["no NATS handshake through the proxy"] += 1
                env.reset_proxy()  # what every scenario does: the proxy port is free for a moment
            rounds += 1
        except Exception as e:  # counted: the test reports every kind at once
            errors[_why(e)] += 1
    out.put({"who": f"churner {os.getpid()}", "rounds": rounds, "errors": dict(errors), "ports": sorted(ports)})


CRASHING_OWNER = (
    "import sys\n"
    "from harness.env.local import LocalEnvironment\n"
    "env = LocalEnvironment(); env.start()\n"
    "print(env.rundir, flush=True)\n"
    "sys.stdin.read()\n"
)


def _crash(rounds: int, out: "multiprocessing.Queue[dict]") -> None:
    """Owners killed by SIGKILL: their run directories stay until another run reaps them."""
    errors: collections.Counter[str] = collections.Counter()
    dirs = []
    for _ in range(rounds):
        p = subprocess.Popen([sys.executable, "-c", CRASHING_OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline().strip()
            if line:
                dirs.append(line)
            else:
                errors[f"owner exited {p.poll()}: {p.stderr.read()[-300:]}"] += 1
        finally:
            p.kill()
            p.communicate(timeout=10)
    out.put({"who": "crasher", "rounds": rounds, "errors": dict(errors), "ports": [], "dirs": dirs})


def _marked(mark: str) -> list[psutil.Process]:
    """Live processes started for this stress test (they carry its mark), but this one and its
    multiprocessing resource tracker (it lives as long as the test session, by design)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid == os.getpid() or p.status() == psutil.STATUS_ZOMBIE or p.environ().get(SESSION_MARK) != mark:
                continue
            if p.ppid() == os.getpid() and "multiprocessing.resource_tracker" in " ".join(p.cmdline()):
                continue
            found.append(p)
        except psutil.Error:
            continue
    return found


def _describe(procs: list[psutil.Process]) -> str:
    out = []
    for p in procs:
        try:
            listening = sorted(c.laddr.port for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN)
            out.append(f"pid {p.pid} {' '.join(p.cmdline())[:120]} listening {listening}")
        except psutil.Error:
            continue
    return "\n".join(out)


def _journal(run_dir: Path) -> dict:
    return json.loads((run_dir / "journal.json").read_text())


def test_environments_installs_runs_and_a_matrix_at_once_trip_over_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = f"stress-{uuid.uuid4().hex}"  # whatever this test starts carries it (inherited)
    run_root, cache = tmp_path / "runs", tmp_path / "cache"
    run_root.mkdir(mode=0o700)
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/stress.yaml").write_text(SCENARIOS)
    monkeypatch.setenv(SESSION_MARK, mark)
    monkeypatch.setenv("NATS_CHAOS_RUN_ROOT", str(run_root))
    monkeypatch.setenv("NATS_CHAOS_CACHE", str(cache))
    monkeypatch.delenv("NATS_CHAOS_RUN_ID", raising=False)

    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_churn, args=(stop, out)) for _ in range(CHURNERS)]
    workers.append(ctx.Process(target=_crash, args=(3, out)))
    started = time.monotonic()
    for w in workers:
        w.start()
    run = [str(HARNESS), "run", "-n", "2", "--seed", str(SEED), "scenarios/stress.yaml"]
    matrix = [str(HARNESS), "matrix", "-j", "2", "--seed", str(SEED), "--client", "nats-py", "--client", OTHER_RELEASE,
              "scenarios/stress.yaml"]
    cli = [subprocess.Popen(argv, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for argv in (run, run, matrix)]
    outputs = []
    try:
        for p in cli:
            outputs.append(p.communicate(timeout=HARD_CAP + 60)[0])
    finally:
        stop.set()
        for p in cli:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.communicate(timeout=30)
    results = [out.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
    wall = time.monotonic() - started

    # 0 errors in the churners and the crasher
    errors = {r["who"]: r["errors"] for r in results if r["errors"]}
    assert not errors, f"errors under concurrency: {errors}"
    churned = sum(r["rounds"] for r in results if r["who"] != "crasher")
    assert churned >= CHURNERS, f"the churners ran {churned} rounds in {wall:.0f}s"

    # the runs and the matrix: every scenario ran, none was an `error`
    codes = [p.returncode for p in cli]
    assert all(c in (0, 1) for c in codes), "exit statuses {}:\n{}".format(codes, "\n----\n".join(o[-3000:] for o in outputs))
    reports = tmp_path / "reports"
    runs = sorted(d for d in reports.iterdir() if d.is_dir() and not d.is_symlink() and not d.name.startswith("matrix-"))
    assert len(runs) == 2, f"two runs, two directories (same seed, maybe the same second): {runs}"
    cells = sorted((reports).glob("matrix-*/*/latest"))
    assert len(cells) == 2, f"matrix cells: {cells}"
    for run_dir in [*runs, *(c.resolve() for c in cells)]:
        records = _journal(run_dir)["records"]
        assert len(records) == SCENARIO_COUNT, f"{run_dir}: {len(records)} records"
        bad = [f"{r['id']}: {r.get('reason', '')[:300]}" for r in records if r["verdict"] == "error"]
        assert not bad, f"{run_dir.name}: error verdicts:\n" + "\n".join(bad)
    assert (reports / "latest").resolve() in runs

    # nothing left behind: no process of ours (servers, agents, workers), no run directory
    deadline = time.monotonic() + 10
    while (left := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind:\n{_describe(left)}"
    crashed = {Path(d).name for r in results for d in r.get("dirs", [])}
    left_dirs = set(os.listdir(run_root))
    assert left_dirs <= crashed, f"run directories left behind by live owners: {sorted(left_dirs - crashed)}"
    reap_stale_runs()  # the next run reaps what the SIGKILLed owners left, if no churner met it yet
    assert sorted(os.listdir(run_root)) == [], "run directories left behind"
    print(f"\nstress: {wall:.0f}s, {churned} environments churned by {CHURNERS} processes, 3 owners SIGKILLed, "
          f"2 runs + a 2-cell matrix (exit {codes}), 0 errors")
