"""The runner's side of the agent: spawn, talk, watch the heartbeat, dump stacks, kill."""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil

from harness.checks.iterators import is_spin
from harness.agent.snapshot import PendingCall, Snapshot, pending_from_json
from harness.env.process import _die_with_parent, spawn
from harness.errors import HarnessError
from harness.targets import AgentCommand

BLOCKED_AFTER = 0.75  # seconds without a heartbeat (sent every 0.1 s) = a blocked event loop
SPIN_WINDOW = BLOCKED_AFTER  # CPU busy this long while the flow waits in a call = a spin (Go agent)


def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """Each thread's (CPU seconds, seconds waiting for a CPU) from Linux schedstat; {} if unknown."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                run, queued = f.read().split()[:2]
            out[int(tid)] = (int(run) / 1e9, int(queued) / 1e9)
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return out


def busy_share(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]], wall: float) -> float:
    """How busy a process was over `wall` seconds, independent of the machine's load: per
    thread, its CPU time over the time it was not waiting for a CPU (a spinning thread ~1
    even when it gets a tenth of a core; a sleeping one ~0), summed, at most 1."""
    total = 0.0
    for tid, (run1, q1) in after.items():
        run0, q0 = before.get(tid, (0.0, 0.0))
        run, queued = max(run1 - run0, 0.0), max(q1 - q0, 0.0)
        total += run / max(wall - queued, run, 1e-3)
    return round(min(total, 1.0), 2)


def heartbeat_gap(since: float, until: float, cpu: float, queued: float | None) -> dict[str, Any]:
    """A gap between two emitted heartbeats, as a value for the loop check.

    `queued`: the seconds the loop's thread waited for a CPU during the gap (None where the
    agent cannot tell): that part of the gap is the machine's, not the agent's. `cpu_busy` is
    the agent's CPU time over the rest (its own time: running or sleeping), so a spin reads
    ~100 % however busy the machine is; without `queued`, over the whole gap as before.
    """
    wall = until - since
    own = max(wall - (queued or 0.0), 1e-6)
    gap = {"since": since, "until": until, "duration": round(wall, 3), "cpu_busy": round(min(cpu / own, 1.0), 2),
           "cpu": round(cpu, 3), "bound": BLOCKED_AFTER}
    if queued is not None:
        gap["queued"] = round(min(queued, wall), 3)
    return gap


class AgentError(HarnessError):
    """The agent died, stopped answering, or refused a request."""


class AgentProcess:
    """One agent process; events are timestamped on the runner's clock as they arrive."""

    def __init__(self, command: AgentCommand | None = None, flow_modules: tuple[str, ...] = ()) -> None:
        """Start the agent: `command` says how for the client target (default: the harness's own
        interpreter, for tests of the harness itself)."""
        self.stderr_file = tempfile.TemporaryFile()
        command = command or AgentCommand((sys.executable, "-m", "harness.agent"))
        env = dict(os.environ, PYTHONUNBUFFERED="1", NATS_CHAOS_FLOW_MODULES=",".join(flow_modules), **command.env)
        if flow_modules and "PYTHONPATH" in command.env:
            # User flow modules are imported from where the user runs the harness.
            env["PYTHONPATH"] = command.env["PYTHONPATH"] + os.pathsep + os.getcwd()
        self.command = command
        # spawn: PDEATHSIG follows the forking thread; a spare made by one scenario's thread
        # is handed to another's, and must live on when the first thread ends
        self.proc = spawn(
            list(command.argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            preexec_fn=_die_with_parent,
            env=env,
        )
        self.ps = psutil.Process(self.proc.pid)
        self.events: list[dict[str, Any]] = []
        self._replies: dict[int, "queue.Queue[dict]"] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self.last_hb = time.monotonic()
        self.blocked: list[dict[str, Any]] = []  # live episodes (read-time gaps), with stack dumps
        self._in_block: dict[str, Any] | None = None
        self.gaps: list[dict[str, Any]] = []  # exact episodes: gaps between emitted heartbeats
        self._prev_hb: tuple[float, float, float | None] | None = None
        self._waiting_hbs: collections.deque[tuple[float, float]] = collections.deque()  # (m, c) while a call waits
        self._spin: dict[str, Any] | None = None  # an open spin-while-waiting episode
        self.t0 = time.monotonic()
        # Set before the reader starts: a fast agent (the Go one is ready in ~1 ms) has its hello
        # read at once, and an assignment after start() would erase it.
        self.hello: dict[str, Any] | None = None
        self._watch_stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- plumbing -----------------------------------------------------------------
    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            now = time.monotonic()
            if "re" in msg:
                q = self._replies.get(msg["re"])
                if q is not None:
                    q.put(msg)
                continue
            ev = msg.get("ev")
            if ev == "hb":
                self.last_hb = now
                self._heartbeat(msg)
                continue
            msg["at"] = now
            with self._cond:
                if ev == "hello":
                    self.hello = msg
                self.events.append(msg)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"ev": "exit", "at": time.monotonic()})
            self._cond.notify_all()

    def _heartbeat(self, msg: dict[str, Any]) -> None:
        m, c, q = msg.get("m"), msg.get("c"), msg.get("q")
        if m is None or c is None:
            return
        if self._prev_hb is not None:
            pm, pc, pq = self._prev_hb
            if m - pm > BLOCKED_AFTER:
                self.gaps.append(heartbeat_gap(pm, m, max(c - pc, 0.0),
                                               None if q is None or pq is None else max(q - pq, 0.0)))
        self._prev_hb = (m, c, q)
        if "w" in msg:
            self._spin_watch(m, c, msg["w"])

    def _spin_watch(self, m: float, c: float, waiting: int) -> None:
        """A spin where there is no event loop to block (the Go agent): the flow waits in a
        tracked call (`w`, in the heartbeat) while the process burns CPU. An episode is a run of
        SPIN_WINDOW-long spans, all with a call pending, each busier than `is_spin`'s share;
        duration and CPU come from the agent's own stamps. Its stacks: a SIGUSR1 dump when it starts."""
        if not waiting:
            self._close_spin()
            self._waiting_hbs.clear()
            return
        hbs = self._waiting_hbs
        hbs.append((m, c))
        while len(hbs) >= 2 and hbs[1][0] <= m - SPIN_WINDOW:
            hbs.popleft()
        m0, c0 = hbs[0]
        if m - m0 < SPIN_WINDOW:
            return
        if is_spin(max(c - c0, 0.0) / (m - m0)):
            if self._spin is None:
                self._spin = {"since": m0, "c0": c0, "mark": self._stderr_size()}
                self.signal(signal.SIGUSR1)  # the Go agent writes every goroutine's stack to stderr
            self._spin.update(until=m, c1=c)
        else:
            self._close_spin()

    def _close_spin(self) -> None:
        sp, self._spin = self._spin, None
        if sp is None or "until" not in sp:
            return
        d = max(sp["until"] - sp["since"], 1e-6)
        self.gaps.append({"since": sp["since"], "until": sp["until"], "duration": round(d, 3),
                          "cpu_busy": round(min(max(sp["c1"] - sp["c0"], 0.0) / d, 1.0), 2),
                          "kind": "spin_while_waiting", "mark": sp["mark"]})

    def _watch(self) -> None:
        """Flag a blocked event loop: no heartbeat for BLOCKED_AFTER; dump stacks while it lasts."""
        while not self._watch_stop.wait(0.05):
            if not self.alive():
                return
            gap = time.monotonic() - self.last_hb
            if gap > BLOCKED_AFTER and self._in_block is None:
                cpu0 = self._cpu()
                mark = self._stderr_size()
                self.signal(signal.SIGUSR1)  # faulthandler: every thread's stack, loop blocked or not
                self._in_block = {"since": self.last_hb, "cpu0": cpu0, "mark": mark, "t_cpu": time.monotonic()}
            elif gap <= BLOCKED_AFTER and self._in_block is not None:
                self._close_block()

    def _close_block(self) -> None:
        b = self._in_block
        assert b is not None
        self._in_block = None
        now = time.monotonic()
        cpu = self._cpu() - b["cpu0"]
        wall = max(now - b["t_cpu"], 1e-6)
        self.blocked.append(
            {
                "since": b["since"],
                "duration": round(self.last_hb - b["since"], 3) if self.last_hb > b["since"] else round(now - b["since"], 3),
                "cpu_busy": round(min(cpu / wall, 1.0), 2),
                "stacks": self.stderr_text(b["mark"])[-6000:],
                "mark": b["mark"],
            }
        )

    def start_watch(self) -> None:
        self.last_hb = time.monotonic()
        if not self._watcher.is_alive():
            self._watcher.start()

    def finish_watch(self) -> list[dict[str, Any]]:
        """Stop watching; return the episodes of a blocked loop, each with its stack dump.

        An episode is a gap between two emitted heartbeats (exact: duration and CPU from the
        agent's own stamps). Its stacks come from the live watcher's dump during it. A live
        episode with no gap behind it was a late read, not a block, and is dropped; one still
        open at the end (the loop never came back) is kept as measured live.
        """
        self._watch_stop.set()
        still_blocked = self._in_block is not None and self.alive() and time.monotonic() - self.last_hb > BLOCKED_AFTER
        if self._in_block is not None:
            self._close_block()
        self._close_spin()
        for b in self.blocked:
            # A process that was stopped as a whole (the Go agent's SIGSTOP self-test) writes the
            # dump asked for meanwhile only on resume, maybe after its heartbeat: read it again now.
            mark = b.pop("mark", None)
            if not b["stacks"] and mark is not None:
                b["stacks"] = self.stderr_text(mark)[:20000][-6000:]
        out = []
        for g in self.gaps:
            if "mark" in g:  # a spin while waiting: its own dump
                dump = self.stderr_text(g["mark"])[:20000]
                out.append({**{k: v for k, v in g.items() if k != "mark"}, "stacks": dump[-6000:] or "(no stack dump)"})
                continue
            live = [b for b in self.blocked if g["since"] - 0.5 <= b["since"] <= g["until"]]
            stacks = live[0]["stacks"] if live else "(no stack dump: the gap was measured from the heartbeats after it ended)"
            out.append({**g, "stacks": stacks})
        if still_blocked and self.blocked:
            out.append(self.blocked[-1])
        return out

    def _cpu(self) -> float:
        try:
            t = self.ps.cpu_times()
            return t.user + t.system
        except psutil.Error:
            return 0.0

    def cpu_busy(self, interval: float = 0.3) -> float:
        """How busy the agent was over `interval`: a spin is ~1.0, a lost wake-up ~0, however
        loaded the machine (each thread's CPU time over the time it was not waiting for a CPU);
        where the kernel does not tell run-queue waits, the fraction of one core it used."""
        t0, a, ta = time.monotonic(), self._cpu(), thread_times(self.proc.pid)
        time.sleep(interval)
        wall, b, tb = time.monotonic() - t0, self._cpu(), thread_times(self.proc.pid)
        if ta and tb:
            return busy_share(ta, tb, wall)
        return round(min((b - a) / wall, 1.0), 2)

    def _stderr_size(self) -> int:
        return os.fstat(self.stderr_file.fileno()).st_size

    def stderr_text(self, start: int = 0) -> str:
        try:
            return os.pread(self.stderr_file.fileno(), 1_000_000, start).decode(errors="replace")
        except (OSError, ValueError):  # ValueError: the file was closed with the agent
            return ""

    def loop_blocked(self) -> bool:
        """True while the agent's heartbeat is overdue (its event loop is not running)."""
        return self.alive() and time.monotonic() - self.last_hb > BLOCKED_AFTER

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    # -- requests -------------------------------------------------------------------
    def snapshot(self, timeout: float = 5.0) -> Snapshot:
        """The agent's tasks, subscriptions, pending calls, connection and process, as values."""
        return Snapshot.from_json(self.request("snapshot", timeout=timeout))

    def pending(self, timeout: float = 2.0) -> tuple[PendingCall, ...]:
        """The flow's tracked calls in progress."""
        return pending_from_json(self.request("pending", timeout=timeout)["pending"])

    def request(self, op: str, timeout: float = 5.0, **kw: Any) -> dict[str, Any]:
        """Send a request; wait for its reply. AgentError on death, timeout or refusal."""
        with self._lock:
            self._next_id += 1
            rid = self._next_id
        q: "queue.Queue[dict]" = queue.Queue()
        self._replies[rid] = q
        try:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write((json.dumps({"id": rid, "op": op, **kw}) + "\n").encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise AgentError(f"agent died before '{op}'", evidence=self.stderr_text()[-2000:]) from None
            deadline = time.monotonic() + timeout
            while True:
                try:
                    reply = q.get(timeout=0.05)
                    break
                except queue.Empty:
                    if not self.alive():
                        raise AgentError(
                            f"agent died (status {self.proc.returncode}) during '{op}'",
                            evidence=self.stderr_text()[-2000:],
                        ) from None
                    if time.monotonic() > deadline:
                        raise AgentError(f"agent did not answer '{op}' within {timeout}s") from None
        finally:
            self._replies.pop(rid, None)
        if not reply.get("ok"):
            raise AgentError(f"agent refused '{op}': {reply.get('error')}", evidence=reply.get("trace", ""))
        return reply

    def wait_event(self, pred: Any, timeout: float, start: int = 0) -> dict[str, Any] | None:
        """The first event (from index `start`) matching `pred`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[start:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or (self.events and self.events[-1].get("ev") == "exit"):
                    return None
                self._cond.wait(min(left, 0.1))

    def forget_events(self, start: int, kinds: tuple[str, ...]) -> None:
        """Drop the events of `kinds` from index `start` on (a soak keeps its record small)."""
        with self._cond:
            self.events[start:] = [e for e in self.events[start:] if e.get("ev") not in kinds]

    def find_event(self, pred: Any) -> dict[str, Any] | None:
        with self._cond:
            return next((e for e in self.events if pred(e)), None)

    def wait_ready(self, timeout: float = 15.0) -> None:
        if self.wait_event(lambda e: e.get("ev") == "hello", timeout) is None:
            raise AgentError(
                "agent did not start", evidence=self.stderr_text()[-2000:],
                hint=f"run it by hand: {' '.join(self.command.argv)}",
            )

    # -- ending -----------------------------------------------------------------------
    def kill(self) -> None:
        self._watch_stop.set()
        if self.alive():
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass
        self.stderr_file.close()

    def exit(self, timeout: float = 2.0) -> None:
        """Ask politely, then kill: no agent outlives its scenario."""
        if self.alive() and not self.loop_blocked():
            try:
                self.request("exit", timeout=timeout)
                self.proc.wait(timeout)
            except (AgentError, subprocess.TimeoutExpired):
                pass
        self.kill()


class AgentPool:
    """Keeps one agent started ahead (importing nats-py takes ~0.2 s), so scenarios need not wait."""

    def __init__(self, command: AgentCommand | None = None, flow_modules: tuple[str, ...] = ()) -> None:
        self.command = command
        self.flow_modules = flow_modules
        self._spare: AgentProcess | None = None
        self._lock = threading.Lock()

    def get(self, refill: bool = True) -> AgentProcess:
        """A ready agent, handed to one caller only; the caller ends it. On failure nothing is left.

        With `refill` False the next spare is not started yet: the caller starts it with
        `refill()` at a moment it waits anyway (a starting interpreter takes ~0.2 s of CPU,
        which on a small machine slows whatever the scenario does meanwhile)."""
        with self._lock:  # two scenarios in flight in one process never get the same spare
            a, self._spare = self._spare, None
            if a is not None and not a.alive():
                a.kill()  # died while it waited (a crash at import, the OOM killer): reaped, not dropped
                a = None
            if a is None:
                a = AgentProcess(self.command, self.flow_modules)
            if refill:
                try:
                    self._spare = AgentProcess(self.command, self.flow_modules)
                except BaseException:
                    a.kill()
                    raise
        try:
            a.wait_ready()
        except BaseException:
            a.kill()  # the caller never saw it: it would outlive its scenario
            raise
        return a

    def refill(self) -> None:
        """Start the spare agent if there is none."""
        with self._lock:
            if self._spare is None:
                self._spare = AgentProcess(self.command, self.flow_modules)

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.kill()
