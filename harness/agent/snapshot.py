"""What the agent reports about itself: asyncio tasks, subscriptions, pending calls, resources.

The agent side builds JSON (`tasks()`, `subscriptions()`, `process()`); the runner side
reads it as frozen values (`Snapshot.from_json`): the checks never see a dict.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import traceback
import weakref
from typing import Any

import psutil

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
    p = psutil.Process()
    ct = p.cpu_times()
    return {
        "pid": os.getpid(),
        "rss": p.memory_info().rss,
        "fds": p.num_fds(),
        "cpu": ct.user + ct.system,
        "threads": p.num_threads(),
    }


# -- values: what the runner reads a snapshot as (frozen, typed; the wire format is JSON) ----


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """One asyncio task in the agent."""

    id: int
    name: str
    coro: str  # the coroutine's __qualname__: nats-py names none of its tasks
    module: str
    state: str  # pending | cancelling | done
    role: str  # "agent", "flow" or "" (the client's)
    stack: tuple[str, ...]  # await chain, outermost first
    created_at: tuple[str, ...]
    subject: str = ""  # for a subscription's message task, the subject it serves


@dataclasses.dataclass(frozen=True)
class SubInfo:
    """One subscription in the client's `nc._subs`."""

    sid: int
    subject: str
    queue: str
    pending_msgs: int
    closed: bool


@dataclasses.dataclass(frozen=True)
class PendingCall:
    """A tracked client call the flow is blocked in (`ctx.call`, `ctx.iterate`)."""

    label: str
    age: float
    task: int


@dataclasses.dataclass(frozen=True)
class ConnState:
    connected: bool
    closed: bool
    reconnecting: bool
    cid: int | None = None  # the server's id of the live connection


@dataclasses.dataclass(frozen=True)
class ProcInfo:
    pid: int
    rss: int
    fds: int
    cpu: float
    threads: int


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The agent's state at one moment: tasks, subscriptions, pending calls, connection, process."""

    tasks: tuple[TaskInfo, ...]
    subs: tuple[SubInfo, ...]
    pending: tuple[PendingCall, ...]
    proc: ProcInfo
    conn: ConnState
    flow_done: bool

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Snapshot":
        return cls(
            tasks=tuple(TaskInfo(**{**t, "stack": tuple(t["stack"]), "created_at": tuple(t["created_at"])}) for t in d["tasks"]),
            subs=tuple(SubInfo(**s) for s in d["subs"]),
            pending=pending_from_json(d["pending"]),
            proc=ProcInfo(**d["proc"]),
            conn=ConnState(**d["conn"]),
            flow_done=bool(d.get("flow_done")),
        )


def pending_from_json(items: list[dict[str, Any]]) -> tuple[PendingCall, ...]:
    return tuple(PendingCall(**p) for p in items)
