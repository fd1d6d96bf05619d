"""The run's schedule: how many scenarios are in flight, and in which order they start.

A scenario's time is almost all waiting — the fault's hold, the client's own timeouts, the
stuck bound (97 % of the default suite's summed wall time) — so the number in flight is
chosen from what the machine can hold (cores for the little CPU each one uses, memory, file
descriptors, loopback ports), not from its cores alone. Each scenario still runs in its own
pytest-xdist worker with its own environment (nats-server, Toxiproxy, agent): isolation is
unchanged, only more of them wait at once.

`-n auto` asks `choose_workers`; `-n K` is the explicit override (`-n 0` runs in-process).
Scenarios start longest first (`order`), by their duration in the newest journals under
`reports/`, else by what the scenario declares (`declared_seconds`), so the run does not end
on a straggler that started last.

A scenario whose entry is tagged `alone` (its checks judge the servers' speed, e.g. replicas
converging within a bound on a 3-node cluster) always runs in that lane, at the end.
A scenario whose verdict a busy machine could have changed (a heartbeat gap the loop check
cannot tell a slowed spin from a stretched burst of work) runs again in the serial `Lane`,
alone, and that run's verdict stands; the report says so.

Everything here is pure over values (`Machine`, durations, scenarios) except `machine()`
and `last_durations()`, which read the machine and the reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import resource
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

# What one scenario in flight costs, measured on the default suite (nats-py 2.16.0, 2 cores,
# `make bench ARGS=suite`): a worker (pytest + the runner, ~70 MB), its nats-server (~25 MB) and
# Toxiproxy (~20 MB), one agent (~45 MB); ~0.1 of a core on average (the suite's CPU time over
# its summed scenario wall time: 51 CPU-s over 487 s at -n 6); under 100 file descriptors;
# ~8 loopback ports (server client/monitor/cluster, Toxiproxy API and proxies, agent connections).
MEMORY_PER_SCENARIO = 200 * 2**20
# A worker that meets a cluster scenario also holds a 3-node cluster (its environments stay up
# per topology): 3 nats-server + 1 toxiproxy-server. Measured with psutil (RSS summed over the
# cluster's processes, nats-server v2.12.8): 63 MB idle, 76 MB after two R3 next.fetch runs.
MEMORY_PER_CLUSTER = 80 * 2**20
FDS_PER_SCENARIO = 200  # twice the measured peak: an agent's leak under test must not starve the run
PORTS_PER_SCENARIO = 64  # generous: TIME_WAIT keeps closed proxy ports for a minute
# Scenarios in flight per core. Each uses ~0.1 core on average, but starts (agent import,
# environment start) come in bursts. Measured on the 183-scenario suite, 2 cores shared with
# other work (load 6-29): 8 in flight 123 s wall, 93 s CPU; 10 in flight 111 s, 100 s CPU (the
# run itself under half the machine), the same verdicts. The CPU-sensitive checks are judged
# on the agent's own time, and what they cannot attribute runs again alone (harness/checks/loop.py).
SCENARIOS_PER_CORE = 5
MAX_WORKERS = 32  # beyond this the controller's bookkeeping and start-up dominate
MEMORY_SHARE = 0.5  # of the memory available now: leave the rest to everyone else


@dataclasses.dataclass(frozen=True)
class Machine:
    """What the machine has now (the inputs of `choose_workers`)."""

    cores: int
    memory_available: int  # bytes
    fd_limit: int  # the soft RLIMIT_NOFILE of this process (each worker inherits it)
    ports: int  # size of the ephemeral port range


@dataclasses.dataclass(frozen=True)
class Concurrency:
    """How many scenarios run at once, and what limited it (for the run header)."""

    workers: int
    limited_by: str
    limits: Mapping[str, int]

    def describe(self) -> str:
        by = ", ".join(f"{k} {v}" for k, v in self.limits.items())
        return f"{self.workers} scenarios in flight (limited by {self.limited_by}; {by})"


def machine() -> Machine:
    """The machine as it is now: cores usable by this process, available memory, limits."""
    import psutil

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        ports = hi - lo + 1
    except (OSError, ValueError):
        ports = 28232  # Linux's default range
    return Machine(cores=cores, memory_available=psutil.virtual_memory().available,
                   fd_limit=soft if soft != resource.RLIM_INFINITY else 1 << 20, ports=ports)


def choose_workers(m: Machine, scenarios: int | None = None, clusters: bool = False) -> Concurrency:
    """The number of scenarios in flight: the smallest of what each resource allows (with
    `clusters`, the selection has cluster scenarios: each worker may hold a cluster too)."""
    per_worker = MEMORY_PER_SCENARIO + (MEMORY_PER_CLUSTER if clusters else 0)
    limits = {
        f"{m.cores} cores x {SCENARIOS_PER_CORE}": max(m.cores * SCENARIOS_PER_CORE, 1),
        "memory" + (" (with a cluster each)" if clusters else ""): max(int(m.memory_available * MEMORY_SHARE) // per_worker, 1),
        "file descriptors": max(m.fd_limit // FDS_PER_SCENARIO, 1),
        "ports": max(m.ports // PORTS_PER_SCENARIO, 1),
        "cap": MAX_WORKERS,
    }
    if scenarios is not None:
        limits["scenarios"] = max(scenarios, 1)
    by = min(limits, key=lambda k: limits[k])
    return Concurrency(workers=limits[by], limited_by=by, limits=limits)


def may_start_clusters(cluster: Any, paths: Sequence[str]) -> bool:
    """Whether a run may start clusters: `--cluster N` above one, or a `cluster: N` scenario in
    the files it runs (`paths`, pytest node ids allowed). `-n auto` then budgets each worker's
    memory for one (`choose_workers(clusters=True)`), from `harness run` and from pytest alike.
    A file that does not load says so later, when it is collected."""
    try:
        if cluster is not None and int(cluster) > 1:
            return True
    except (TypeError, ValueError):
        return False  # an invalid --cluster is a settings error, reported as one
    from harness.scenario import load_paths

    try:
        return any(sc.cluster > 1 for sc in load_paths([p.split("::")[0] for p in paths]))
    except Exception:
        return False


def declared_seconds(sc: Any) -> float:
    """What a scenario declares it may take, for one never run: its hold(s) and its timeout."""
    return float(sc.hold) * max(int(getattr(sc, "rounds", 1)), 1) + float(sc.timeout)


def last_durations(reports: Path, exclude: str = "", journals: int = 20) -> dict[str, float]:
    """Each scenario's wall time in the newest journal under `reports` that ran it.

    Reads at most `journals` run directories, newest first (by modification time), skipping
    `exclude` (the run in progress). A damaged or foreign file is skipped: ordering is a hint.
    """
    try:
        runs = [d for d in reports.iterdir() if d.is_dir() and not d.is_symlink() and d.name != exclude]
    except OSError:
        return {}
    runs.sort(key=lambda d: _mtime(d), reverse=True)
    out: dict[str, float] = {}
    for d in runs[:journals]:
        for rec in _records(d):
            try:
                sid, wall = rec["id"], float(rec["timings"]["wall"])
            except (KeyError, TypeError, ValueError):
                continue
            out.setdefault(sid, wall)
    return out


def _mtime(d: Path) -> float:
    try:
        return d.stat().st_mtime
    except OSError:
        return 0.0


def _records(run_dir: Path) -> Iterable[Mapping[str, Any]]:
    """The records of a run directory: journal.json if whole, else the lines of journal.jsonl."""
    try:
        return json.loads((run_dir / "journal.json").read_text())["records"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    recs = []
    try:
        for line in (run_dir / "journal.jsonl").read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and row.get("kind") == "record":
                recs.append(row)
    except OSError:
        pass
    return recs


def expected_seconds(sc: Any, durations: Mapping[str, float]) -> float:
    """A scenario's expected duration: as last measured, else as declared."""
    return durations.get(sc.id, declared_seconds(sc))


ALONE = "alone"  # a scenario file's tag: its checks depend on the machine's speed, judge it alone


def declared_alone(sc: Any) -> bool:
    """Whether a scenario's entry says it is judged alone (`tags: [alone]`)."""
    return ALONE in getattr(sc, "tags", ())


def order(scenarios: Sequence[Any], durations: Mapping[str, float]) -> list[int]:
    """Indexes of `scenarios`, longest expected first; those judged alone last (a serial tail:
    each waits for the scenarios in flight, so they wait least once the rest has drained);
    ties keep their collection order."""
    return sorted(range(len(scenarios)),
                  key=lambda i: (declared_alone(scenarios[i]), -expected_seconds(scenarios[i], durations), i))


class Lane:
    """The serial lane: a scenario that must be judged alone runs while no other does.

    Every scenario in flight holds the lane shared; one that must run alone holds it
    exclusively — it starts once the scenarios in flight have finished, and none starts
    meanwhile. Two lock files in a directory every worker of the run shares; a `gate` taken
    briefly before the shared hold keeps a waiting exclusive hold from being starved by new
    shared ones. flock: the kernel drops a lock with its holder, so a killed worker never
    leaves the lane locked.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.gate, self.lane = directory / ".schedule-gate.lock", directory / ".schedule-lane.lock"  # see remove_files

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with _flock(self.gate, fcntl.LOCK_EX):
            held = _open_locked(self.lane, fcntl.LOCK_SH)
        try:
            yield
        finally:
            os.close(held)

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        with _flock(self.gate, fcntl.LOCK_EX), _flock(self.lane, fcntl.LOCK_EX):
            yield

    @staticmethod
    def remove_files(directory: Path) -> None:
        """Remove the lock files once no worker is left (the controller, at the end of the run)."""
        for name in (".schedule-gate.lock", ".schedule-lane.lock"):
            try:
                (directory / name).unlink()
            except OSError:
                pass


UNDECIDED_GAP = "heartbeat gap: undecided"  # the runner's timeline event (harness/checks/loop.py)


def needs_alone(record: Mapping[str, Any]) -> bool:
    """Whether a scenario's record may owe its verdict to a busy machine: a heartbeat gap the
    loop check could not attribute. Such a scenario is judged again, alone."""
    return record.get("verdict") in ("passed", "failed") and any(
        e.get("what") == UNDECIDED_GAP for e in record.get("events", ()))


def in_lane(lane: "Lane | None", run: Callable[[], dict[str, Any]], alone: bool = False) -> dict[str, Any]:
    """Run a scenario (`run` returns its record) in flight with the others; if a busy machine
    may have made its verdict, again alone, and that record stands. `alone`: declared so, run
    alone at once. No lane: in-process, always alone."""
    if lane is None:
        return run()
    if alone:
        with lane.alone():
            return {**run(), "lane": {"why": "declared alone (tags: [alone]): its checks depend on the machine's speed",
                                      "first_verdict": "declared"}}
    with lane.shared():
        record = run()
    if not needs_alone(record):
        return record
    with lane.alone():
        return judged_alone(record, run())


def judged_alone(first: Mapping[str, Any], again: Mapping[str, Any]) -> dict[str, Any]:
    """The record of the run alone, saying why it ran and what the first run found."""
    return {**again, "lane": {
        "why": "a heartbeat gap in the first run could be a spin the machine slowed or a burst of work it stretched",
        "first_verdict": first["verdict"],
        "first_findings": [f["summary"] for f in first.get("findings", ())],
        "first_wall": first.get("timings", {}).get("wall"),
    }}


def _open_locked(path: Path, how: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, how)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def _flock(path: Path, how: int) -> Iterator[None]:
    fd = _open_locked(path, how)
    try:
        yield
    finally:
        os.close(fd)
