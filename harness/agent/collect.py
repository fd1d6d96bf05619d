"""What the agent reports about itself, as JSON: asyncio tasks, subscriptions, resources.

Runs inside the agent process, which imports only the standard library and the client
under test (its own virtualenv per target): no psutil here, /proc and `resource` instead.
The runner reads what this builds as frozen values (`harness.agent.snapshot`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import time
import traceback
import tracemalloc
import weakref
from typing import Any

_created_at: "weakref.WeakKeyDictionary[asyncio.Task, list[str]]" = weakref.WeakKeyDictionary()


def install_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    """Record where every task is created (the leak report's 'created at')."""

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task:
        task = asyncio.Task(coro, loop=loop, **kw)
        frames = traceback.extract_stack(limit=14)[:-1]
        _created_at[task] = [
            f"{f.filename}:{f.lineno} in {f.name}" for f in frames if "asyncio/" not in f.filename
        ][-6:]
        return task

    loop.set_task_factory(factory)


def coro_qualname(task: asyncio.Task) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or type(coro).__qualname__


def coro_module(task: asyncio.Task) -> str:
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None) or getattr(coro, "ag_code", None)
    return code.co_filename if code else ""


def task_stack(task: asyncio.Task, limit: int = 16) -> list[str]:
    """The task's await chain, outermost first, ending in what it waits on."""
    out: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and len(out) < limit:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        aw = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
        if aw is None:
            break
        if not any(hasattr(aw, a) for a in ("cr_frame", "ag_frame", "gi_frame")):
            out.append(f"awaiting {type(aw).__qualname__}")
            break
        coro = aw
    return out


def tasks(labels: "weakref.WeakKeyDictionary[asyncio.Task, str]") -> list[dict[str, Any]]:
    out = []
    for t in asyncio.all_tasks():
        state = "cancelling" if t.cancelling() else ("done" if t.done() else "pending")
        out.append(
            {
                "id": id(t),
                "name": t.get_name(),
                "coro": coro_qualname(t),
                "module": coro_module(t),
                "state": state,
                "role": labels.get(t, ""),
                "stack": task_stack(t),
                "created_at": _created_at.get(t, []),
                "subject": _subscription_subject(t),
            }
        )
    return out


def _subscription_subject(task: asyncio.Task) -> str:
    """For a subscription's message task, the subject it serves (tells the request inbox apart)."""
    frame = getattr(task.get_coro(), "cr_frame", None)
    owner = frame.f_locals.get("self") if frame is not None else None
    return str(getattr(owner, "subject", "") or "")


def subscriptions(nc: Any) -> list[dict[str, Any]]:
    if nc is None:
        return []
    out = []
    for sid, sub in list(getattr(nc, "_subs", {}).items()):
        out.append(
            {
                "sid": sid,
                "subject": sub.subject,
                "queue": sub.queue,
                "pending_msgs": sub.pending_msgs,
                "closed": bool(getattr(sub, "_closed", False)),
            }
        )
    return out


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each points at (Linux /proc)."""
    out: dict[int, str] = {}
    base = "/proc/self/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for name in names:
        try:
            out[int(name)] = os.readlink(f"{base}/{name}")
        except OSError:
            continue  # the descriptor listdir itself used, already closed
    return out


def process() -> dict[str, Any]:
    """Pid, RSS, open fds, CPU seconds and threads of this process (Linux /proc, no psutil)."""
    return {
        "pid": os.getpid(),
        "rss": _rss_bytes(),
        "fds": len(open_fds()),
        "cpu": round(time.process_time(), 4),
        "threads": _threads(),
    }


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def memory(nc: Any, start_tracing: bool = False) -> dict[str, Any]:
    """One soak sample of what the runtime manages (the `memory` check fits slopes on these).

    Allocators keep freed pages, so a leak of a few hundred bytes per round hides in RSS for
    thousands of rounds: per sample, the bytes `tracemalloc` traces (started by the soak's
    first sample, `start_tracing`, so only soaks pay for it), the objects the garbage
    collector tracks after a full collection, asyncio tasks not done, the client's
    subscriptions — and RSS, as context.
    """
    if start_tracing and not tracemalloc.is_tracing():
        tracemalloc.start()
    gc.collect()
    return {
        "traced": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0,
        "objects": len(gc.get_objects()),
        "tasks": sum(1 for t in asyncio.all_tasks() if not t.done()),
        "subs": len(getattr(nc, "_subs", None) or {}) if nc is not None else 0,
        "rss": _rss_bytes(),
    }
