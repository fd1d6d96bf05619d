"""Leaked asyncio tasks in the agent.

A task leaks if it is not done, was not there at baseline, and no ignore rule explains
it. Ignore rules are small named predicates, each saying why it exists.
"""

from __future__ import annotations

from typing import Callable

from harness.agent.snapshot import Snapshot, TaskInfo
from harness.checks import AFTER_CLOSE, AFTER_FLOW, Finding, Sources, check, step
from harness.checks.subscriptions import is_request_inbox

Rule = Callable[[TaskInfo, Snapshot], bool]

NATS_GO = "github.com/nats-io/nats.go."  # a goroutine's entry function, as the Go agent reports it

# The connection's own machinery, created on connect and ended by close. nats-py: the read
# loop, flusher and pinger tasks. nats.go: the read loop and flusher goroutines, and the
# dispatcher of the connection's callbacks (disconnect, reconnect, error, closed handlers),
# started by Connect; nats.go pings from a timer, not a goroutine.
CONNECTION_TASKS = {
    "Client._read_loop", "Client._flusher", "Client._ping_interval",
    NATS_GO + "(*Conn).readLoop", NATS_GO + "(*Conn).flusher", NATS_GO + "(*asyncCallbacksHandler).asyncCBDispatcher",
}
# The reconnect loop (nats-py's task, nats.go's goroutine).
RECONNECT_TASKS = {"Client._attempt_reconnect", NATS_GO + "(*Conn).doReconnect"}
# A subscription's message delivery (nats-py's task, nats.go's goroutine per async subscription).
SUBSCRIPTION_TASKS = {"Subscription._wait_for_msgs", NATS_GO + "(*Conn).waitForMsgs"}


def ignore_agent_own(task: TaskInfo, snap: Snapshot) -> bool:
    """The agent's own command handlers and heartbeat are not the client's."""
    return task.role == "agent"


def ignore_connection_while_open(task: TaskInfo, snap: Snapshot) -> bool:
    """The connection's read loop, flusher and pinger (nats.go: callback dispatcher), while the connection is open."""
    return task.coro in CONNECTION_TASKS and not snap.conn.closed


def ignore_reconnect_while_reconnecting(task: TaskInfo, snap: Snapshot) -> bool:
    """The reconnect loop while the client is (still) reconnecting after a fault."""
    return task.coro in RECONNECT_TASKS and snap.conn.reconnecting


def ignore_request_inbox_while_open(task: TaskInfo, snap: Snapshot) -> bool:
    """The message task of the connection's shared request inbox (`_INBOX.<id>.*`, made by the
    first request) while the connection is open."""
    return (
        task.coro in SUBSCRIPTION_TASKS and is_request_inbox(task.subject) and not snap.conn.closed
    )


DEFAULT_RULES: tuple[Rule, ...] = (
    ignore_agent_own,
    ignore_connection_while_open,
    ignore_reconnect_while_reconnecting,
    ignore_request_inbox_while_open,
)


def find_leaked_tasks(
    snap: Snapshot, baseline_ids: set[int], phase: str, rules: tuple[Rule, ...] = DEFAULT_RULES
) -> list[Finding]:
    """Tasks in `snap` that are pending, new since baseline and not ignored."""
    out = []
    for t in snap.tasks:
        if t.state == "done" or t.id in baseline_ids or any(r(t, snap) for r in rules):
            continue
        where = t.created_at[-1] if t.created_at else "?"
        out.append(
            Finding(
                check="tasks",
                summary=f"leaked task {t.coro} ({t.state}, {phase}) created at {where}",
                evidence="stack:\n  " + "\n  ".join(t.stack or ("(none)",)) + "\ncreated at:\n  " + "\n  ".join(t.created_at or ("?",)),
            )
        )
    return out


check("tasks", "asyncio tasks left behind (after the flow, and after close)")


@step("tasks", AFTER_FLOW, needs=("snapshot",))
def after_flow(s: Sources) -> list[Finding]:
    """New tasks since the after-connect baseline, settled within the leak grace."""
    return s.settled(lambda: find_leaked_tasks(s.snapshot(), set(s.baseline.tasks), AFTER_FLOW))


@step("tasks", AFTER_CLOSE, needs=("snapshot",))
def after_close(s: Sources) -> list[Finding]:
    """After close nothing of the client may remain, not even what connect started."""
    return s.settled(lambda: find_leaked_tasks(s.snapshot(), set(s.baseline.pre_connect_tasks), AFTER_CLOSE))
