"""Processes the harness starts: spawn, readiness by evidence, stop, and reaping after a crash.

Two lines of defence so nothing outlives the harness:
1. every child gets PR_SET_PDEATHSIG=SIGKILL: the kernel kills it when the process
   that started it dies, even by SIGKILL;
2. every child has a pid file (pid + create time) in its run directory, next to an
   `owner.pid`; a later run reaps the children of any run whose owner is gone (this
   covers what (1) cannot: children re-parented by a detached owner, other OSes).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import http.client
import json
import queue
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil

from harness.errors import MissingBinaryError, StartupError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int | None = None) -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before prctl took effect: nobody would ever stop us
    os.setpgrp()  # Ctrl-C in a terminal reaches the harness only; the harness stops children


class _Spawner:
    """Start children from a thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process:
    a server started from a worker thread (`asyncio.to_thread(env.restart_server)`, a
    thread pool) would be SIGKILLed as soon as that thread ends. The main thread, and this
    one long-lived daemon thread, end only with the process.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[subprocess.Popen[bytes]], list[str], dict[str, Any]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        if threading.current_thread() is threading.main_thread():
            return subprocess.Popen(argv, **kwargs)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="nats-chaos-spawner", daemon=True)
                self._thread.start()
        fut: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((fut, argv, kwargs))
        return fut.result()

    def _serve(self) -> None:
        while True:
            fut, argv, kwargs = self._jobs.get()
            try:
                fut.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as e:  # handed to the caller, who raises it
                fut.set_exception(e)


_spawner = _Spawner()


def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen, forked from a thread that lives as long as the process (see _Spawner):
    a child started from a worker thread must not be SIGKILLed when that thread ends."""
    return _spawner.popen(argv, **kwargs)


def runs_root() -> Path:
    """Where run directories live: $NATS_CHAOS_RUN_ROOT or <tmp>/nats-chaos-<uid>."""
    root = os.environ.get("NATS_CHAOS_RUN_ROOT") or os.path.join(
        tempfile.gettempdir(), f"nats-chaos-{os.getuid()}"
    )
    p = Path(root)
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    return p


def find_binary(env_var: str, names: Sequence[str], how_to_get: str) -> str:
    """Resolve an executable: $ENV_VAR, then the project's .bin/ and .venv/bin/, then PATH."""
    override = os.environ.get(env_var)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise MissingBinaryError(
            f"{env_var}={override} is not an executable file",
            hint=f"unset {env_var} or point it at a real binary; {how_to_get}",
        )
    dirs = [PROJECT_ROOT / ".bin", PROJECT_ROOT / ".venv" / "bin", Path(sys.executable).parent]
    for name in names:
        for d in dirs:
            cand = d / name
            if cand.is_file() and os.access(cand, os.X_OK):
                return str(cand)
        found = shutil.which(name)
        if found:
            return found
    raise MissingBinaryError(
        f"{names[0]} not found (looked in ${env_var}, {PROJECT_ROOT / '.bin'}, the virtualenv and PATH)",
        hint=how_to_get,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (the OS picks it)."""
    return free_ports({"port": None})["port"]


def free_ports(wanted: dict[str, int | None]) -> dict[str, int]:
    """Fill in the unset ports of `wanted` with distinct free loopback ports.

    The picking sockets stay open until all are picked, so the OS cannot hand out the same
    port twice (bind-and-close one at a time can).
    """
    import socket

    held: list[socket.socket] = []
    try:
        out = {}
        for key, port in wanted.items():
            if port is None:
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            out[key] = port
        return out
    finally:
        for s in held:
            s.close()


def listening_ports(pid: int) -> set[int]:
    """The loopback TCP ports process `pid` listens on (empty if it is gone).

    Readiness is established on *our* process: a port chosen free can be taken by another
    program before our server binds it, and a probe would then be answered by that program.
    """
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return set()
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}


_BIND_FAILED = (
    re.compile(r"127\.0\.0\.1:(\d+)\S*:? bind: address already in use"),  # Go servers, podman
    re.compile(r"Bind for 127\.0\.0\.1:(\d+) failed: port is already allocated"),  # Docker
)


def port_taken(text: str) -> int | None:
    """The port a server (or a container engine) failed to bind, from its log or error; None if none."""
    for pattern in _BIND_FAILED:
        m = pattern.search(text)
        if m:
            return int(m.group(1))
    return None


def chosen_port_lost(text: str, ports: dict[str, int], wanted: dict[str, int | None]) -> str | None:
    """The role of a port we chose (not one asked for) that a failed bind in `text` names, if any:
    free when chosen, taken by another program before our server bound it."""
    taken = port_taken(text)
    return next((r for r, p in ports.items() if p == taken and wanted.get(r) is None), None)


def port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def http_ok(url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"User-Agent": "nats-chaos-harness"}), timeout=timeout
        ) as r:
            return 200 <= r.status < 300
    # HTTPException: something else holds the port (a nats-server answers with its INFO line,
    # BadStatusLine) — not ours, so not ready; the caller's own-pid check says whose it is
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return False


def get_json(url: str, timeout: float = 1.0) -> Any:
    """A monitoring endpoint's JSON, or None if it does not answer."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"User-Agent": "nats-chaos-harness"}), timeout=timeout
        ) as r:
            return json.load(r)
    except (OSError, ValueError, http.client.HTTPException):  # HTTPException: not an HTTP server on that port
        return None


_FAN_OUT_LOCK = threading.Lock()
_FAN_OUT_POOL: ThreadPoolExecutor | None = None


def fan_out(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """`fn(item)` for every item at once, results in order (an exception is raised after every
    call ended). For bounded reads of independent servers (each node's monitoring endpoint):
    a cluster's three nodes answer in the time of the slowest, not of the three one after
    another. `fn` must not fan out itself (the pool's threads are shared)."""
    global _FAN_OUT_POOL
    if len(items) < 2:
        return [fn(i) for i in items]
    with _FAN_OUT_LOCK:
        if _FAN_OUT_POOL is None:
            _FAN_OUT_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fan-out")
        pool = _FAN_OUT_POOL
    futures = [pool.submit(fn, i) for i in items]
    wait_futures(futures)
    return [f.result() for f in futures]


def tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_bytes()[-64_000:].decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


class ManagedProcess:
    """One server process: started with its log and pid file in a run directory."""

    def __init__(self, name: str, argv: list[str], rundir: Path) -> None:
        self.name = name
        self.argv = argv
        self.rundir = rundir
        self.log_path = rundir / f"{name}.log"
        self.pid_path = rundir / f"{name}.pid"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        try:
            self.proc = _spawner.popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=functools.partial(_die_with_parent, os.getpid()),
                close_fds=True,
            )
        except OSError as e:
            raise StartupError(
                f"{self.name} could not be started: {e.strerror or e}",
                evidence=f"command: {self.argv[0]}",
                hint="check that the binary is executable and built for this machine",
            ) from None
        finally:
            log.close()
        ct = psutil.Process(self.proc.pid).create_time()
        self.pid_path.write_text(json.dumps({"pid": self.proc.pid, "create_time": ct, "argv0": self.argv[0]}))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def log_tail(self) -> str:
        """The end of this process's log, as error evidence (the run directory goes with teardown)."""
        return f"last lines of {self.log_path.name}:\n{tail(self.log_path)}"

    def wait_ready(self, probe: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `probe` until true; fail at once if the process exits, or at the deadline."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            exited = not self.alive()
            if not exited and probe():
                return
            # A failed bind says most: nats-server exits on it, toxiproxy-server keeps running
            taken = port_taken(tail(self.log_path, 20))
            if taken is not None:
                raise StartupError(
                    f"{self.name} could not listen on 127.0.0.1:{taken}: address already in use",
                    evidence=self.log_tail(),
                    hint=_hint_from_log(self.log_path),
                )
            if exited:
                code = self.proc.returncode if self.proc else None
                raise StartupError(
                    f"{self.name} exited during start-up (status {code}) before {what}",
                    evidence=self.log_tail(),
                    hint=_hint_from_log(self.log_path),
                )
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{self.name} not ready after {timeout:.1f}s: no {what}",
                    evidence=self.log_tail(),
                    hint=_hint_from_log(self.log_path),
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def stop(self, grace: float = 3.0) -> None:
        """SIGCONT (a paused process cannot act on SIGTERM), SIGTERM, then SIGKILL after `grace`."""
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGCONT)
                    self.proc.terminate()
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            else:
                self.proc.wait()
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    def kill(self) -> None:
        """SIGKILL and wait: an abrupt crash, as a fault."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(5)

    def pause(self, timeout: float = 2.0) -> None:
        """SIGSTOP, and return only once every thread is stopped.

        kill() returns before the signal has stopped a thread running on another CPU; a
        server thread can still answer a request in that window, so "paused" is established
        from /proc, not assumed.
        """
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not _all_threads_stopped(self.proc.pid):
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{self.name} (pid {self.proc.pid}) not stopped {timeout:.1f}s after SIGSTOP",
                    hint="is it being traced, or in uninterruptible I/O?",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.02)


def _all_threads_stopped(pid: int) -> bool:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True  # gone: nothing runs
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # the thread exited
        if state not in ("T", "t", "Z", "X"):
            return False
    return True


def _hint_from_log(log_path: Path) -> str:
    text = tail(log_path, 200).lower()
    if "address already in use" in text:
        return "a port it needs is taken by another program; pick other ports or stop that program"
    return "read the log above; `harness env up` starts the environment by hand for a closer look"


# -- run directories and reaping --------------------------------------------------
#
# Run directories are shared by every harness process on the machine (xdist workers,
# a matrix's parallel runs, a second terminal): each one reaps the others' abandoned
# directories. Two rules keep that safe:
# 1. a run directory appears under its public name only once its owner is recorded: it
#    is made under a private name (`.new-…`), owner.pid is written inside, and one
#    rename(2) publishes both at once;
# 2. the reaper removes only what is provably abandoned: an owner that is dead (its pid
#    gone or reused), or no owner record at all and untouched for ABANDONED_AFTER. A
#    reaper first claims a directory by renaming it (`.reap-…`): of two reapers, one wins
#    and the other moves on; nothing vanishes under a reaper's feet.

STAGING = ".new-"
CLAIMED = ".reap-"
# A directory without a readable owner is left alone this long: the owner may be between
# mkdtemp and writing owner.pid (staging), or in the middle of removing it (rmtree).
ABANDONED_AFTER = 60.0


def new_rundir(prefix: str) -> Path:
    """A fresh run directory owned by this process (owner.pid records who owns it).

    It is published by rename with its owner.pid already inside: no reaper ever sees it
    without an owner.
    """
    reap_stale_runs()
    root = runs_root()
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING}{prefix}-", dir=root))
    try:
        me = psutil.Process()
        (staging / "owner.pid").write_text(json.dumps({"pid": me.pid, "create_time": me.create_time()}))
        while True:
            final = root / f"{prefix}-{secrets.token_hex(6)}"
            try:
                # rename(2) replaces an *empty* directory; every published one holds owner.pid,
                # so a clash fails (ENOTEMPTY) and another name is drawn
                os.rename(staging, final)
                return final
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _pidfile_process(path: Path) -> psutil.Process | None:
    """The live process a pid file names, or None if it is gone or the pid was reused."""
    try:
        rec = json.loads(path.read_text())
        p = psutil.Process(int(rec["pid"]))
        if abs(p.create_time() - float(rec["create_time"])) > 0.01:
            return None
        if p.status() == psutil.STATUS_ZOMBIE:
            # dead already, only not yet reaped by its (new) parent: waiting on it could last
            # for ever where PID 1 reaps nothing (a bare container)
            return None
        return p
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def reap_stale_runs() -> list[int]:
    """End the servers of earlier runs whose owner died (e.g. SIGKILL); returns the pids ended.

    Safe while every other harness process does the same, and while owners create and
    remove their own directories (the rules above).
    """
    ended: list[int] = []
    root = runs_root()
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        d = Path(entry.path)
        try:
            if not entry.is_dir(follow_symlinks=False) or not _abandoned(d):
                continue
        except FileNotFoundError:
            continue  # removed meanwhile, by its owner or another reaper
        if not entry.name.startswith(CLAIMED):
            claim = root / f"{CLAIMED}{entry.name.removeprefix(STAGING)}-{secrets.token_hex(3)}"
            try:
                os.rename(d, claim)  # exclusive: the loser gets ENOENT
            except FileNotFoundError:
                continue
            d = claim
        ended += _end_servers(d)
        shutil.rmtree(d, ignore_errors=True)
    return ended


def _abandoned(d: Path) -> bool:
    """True if run directory `d` is provably nobody's: its owner is dead, or it has no
    owner record and nobody has touched it for ABANDONED_AFTER."""
    if d.name.startswith(CLAIMED):
        # a reaper removes what it claimed within seconds: one left this long is a dead reaper's
        return _idle_for(d) >= ABANDONED_AFTER
    owner = d / "owner.pid"
    try:
        rec = json.loads(owner.read_text())
        pid, create_time = int(rec["pid"]), float(rec["create_time"])
    except FileNotFoundError:
        # staging before owner.pid is written, or an owner in the middle of removing it
        return _idle_for(d) >= ABANDONED_AFTER
    except (OSError, ValueError, KeyError, TypeError):
        return _idle_for(d) >= ABANDONED_AFTER  # half-written or corrupt: proves nothing
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - create_time) > 0.01 or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False  # there, but not ours to inspect: not proof that it is dead


def _idle_for(d: Path) -> float:
    """Seconds since `d` last changed: ctime moves with renames too, so a fresh claim is young."""
    st = d.stat()
    return time.time() - max(st.st_mtime, st.st_ctime)


def _end_servers(d: Path) -> list[int]:
    """Kill the live processes named by the pid files in `d` (but its owner's); the pids ended."""
    ended = []
    for pf in sorted(d.glob("*.pid")):
        if pf.name == "owner.pid":
            continue
        p = _pidfile_process(pf)
        if p is not None:
            with contextlib.suppress(psutil.Error):
                p.resume()  # a paused server cannot act on signals other than KILL
                p.kill()
                p.wait(5)
                ended.append(p.pid)
    return ended


def remove_rundir(d: Path) -> None:
    shutil.rmtree(d, ignore_errors=True)

