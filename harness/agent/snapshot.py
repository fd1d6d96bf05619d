"""What the agent reports about itself, as the runner reads it: frozen values.

The agent builds the JSON (`harness.agent.collect` for the Python agent; the Go agent
builds the same shapes); the runner reads it as frozen values (`Snapshot.from_json`):
the checks never see a dict and never import a client.
"""

from __future__ import annotations

import dataclasses
from typing import Any


# -- values: what the runner reads a snapshot as (frozen, typed; the wire format is JSON) ----


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """One asyncio task in the agent (nats-py), or one goroutine (nats.go's agent)."""

    id: int
    name: str
    coro: str  # the coroutine's __qualname__ (nats-py names none of its tasks); a goroutine's entry function
    module: str
    state: str  # pending | cancelling | done; a goroutine's wait reason (chan receive, select, IO wait, ...)
    role: str  # "agent", "flow" or "" (the client's)
    stack: tuple[str, ...]  # await chain / goroutine frames, outermost first
    created_at: tuple[str, ...]
    subject: str = ""  # for a subscription's message task or goroutine, the subject it serves
    top: str = ""  # a goroutine's innermost frame: where it sits


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
    # Client locks the agent found held and read around rather than wait on (the Go agent:
    # nats.go holds its connection lock across a blocked socket write), each named with how
    # long: evidence of what the client holds, on the timeline.
    busy: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Snapshot":
        return cls(
            tasks=tuple(TaskInfo(**{**t, "stack": tuple(t["stack"]), "created_at": tuple(t["created_at"])}) for t in d["tasks"]),
            subs=tuple(SubInfo(**s) for s in d["subs"]),
            pending=pending_from_json(d["pending"]),
            proc=ProcInfo(**d["proc"]),
            conn=ConnState(**d["conn"]),
            flow_done=bool(d.get("flow_done")),
            busy=tuple(d.get("busy") or ()),
        )


def pending_from_json(items: list[dict[str, Any]]) -> tuple[PendingCall, ...]:
    return tuple(PendingCall(**p) for p in items)
