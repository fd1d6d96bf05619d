"""The task check's rules for nats.go's goroutines, on values built here (no Go needed)."""

from __future__ import annotations

from harness.agent.snapshot import ConnState, ProcInfo, Snapshot, TaskInfo
from harness.checks.loop import find_blocked_loop
from harness.checks.tasks import NATS_GO, find_leaked_tasks


def goroutine(gid: int, entry: str, subject: str = "", role: str = "") -> TaskInfo:
    return TaskInfo(id=gid, name=f"goroutine {gid}", coro=entry, module="x.go:1", state="chan receive", role=role,
                    stack=(f"{entry} at x.go:1",), created_at=("x.go:2 in y (started in goroutine 1)",), subject=subject)


def snap(tasks: tuple[TaskInfo, ...], closed: bool, reconnecting: bool = False) -> Snapshot:
    return Snapshot(tasks=tasks, subs=(), pending=(), proc=ProcInfo(1, 1, 1, 0.0, 1),
                    conn=ConnState(connected=not closed and not reconnecting, closed=closed, reconnecting=reconnecting),
                    flow_done=True)


MACHINERY = (
    goroutine(8, NATS_GO + "(*Conn).readLoop"),
    goroutine(9, NATS_GO + "(*Conn).flusher"),
    goroutine(10, NATS_GO + "(*asyncCallbacksHandler).asyncCBDispatcher"),
    goroutine(11, NATS_GO + "(*Conn).waitForMsgs", subject="_INBOX.abc.*"),
)


def test_the_connections_goroutines_are_ignored_while_it_is_open() -> None:
    assert find_leaked_tasks(snap(MACHINERY, closed=False), set(), "after the flow") == []


def test_the_connections_goroutines_after_close_are_leaks() -> None:
    found = find_leaked_tasks(snap(MACHINERY, closed=True), set(), "after close")
    assert [f.summary.split(" (")[0] for f in found] == [f"leaked task {t.coro}" for t in MACHINERY]


def test_a_flows_subscription_goroutine_is_a_leak_while_open() -> None:
    sub = goroutine(12, NATS_GO + "(*Conn).waitForMsgs", subject="_INBOX.abc")
    found = find_leaked_tasks(snap((sub,), closed=False), set(), "after the flow")
    assert len(found) == 1 and "waitForMsgs" in found[0].summary


def test_the_reconnect_goroutine_is_ignored_only_while_reconnecting() -> None:
    rec = goroutine(13, NATS_GO + "(*Conn).doReconnect")
    assert find_leaked_tasks(snap((rec,), closed=False, reconnecting=True), set(), "after the flow") == []
    assert len(find_leaked_tasks(snap((rec,), closed=False), set(), "after the flow")) == 1


def test_a_spin_while_waiting_is_one_loop_finding_with_its_dump() -> None:
    gap = {"since": 1.0, "until": 3.0, "duration": 2.0, "cpu_busy": 0.93, "kind": "spin_while_waiting", "stacks": "goroutine 7"}
    (f,) = find_blocked_loop([gap])
    assert f.summary == "spinning for 2.00s while the flow waited in a client call (cpu 93%)" and f.evidence == "goroutine 7"


def test_the_hello_of_an_agent_that_answers_at_once_is_kept() -> None:
    # The Go agent says hello ~1 ms after it starts; the runner's side once erased a hello read
    # that early (2 of 60 starts) and took a flow the agent lacks for one it has.
    from harness.agent.runner_side import AgentProcess
    from harness.targets import AgentCommand

    fast = AgentCommand(("sh", "-c", 'echo \'{"ev": "hello", "t": 0, "flows": ["x"]}\'; exec cat >/dev/null'))
    for _ in range(30):
        a = AgentProcess(fast)
        try:
            a.wait_ready(timeout=5)
            assert a.hello is not None and a.hello["flows"] == ["x"]
        finally:
            a.kill()


def test_a_flow_under_a_trigger_its_client_never_reaches_is_not_applicable() -> None:
    from harness.flows import FLOWS
    from harness.runner import not_applicable

    hello = {"client": {"impl": "nats.go", "version": "v1.55.0"}, "flows": ["kv.keys"],
             "not_applicable": {"kv.keys@api_request": "no CONSUMER.INFO request"}}
    spec = FLOWS["kv.keys"]
    assert not_applicable(hello, spec, "api_request") == "nats.go v1.55.0: no CONSUMER.INFO request"
    assert not_applicable(hello, spec, "in_call") == "" and not_applicable(hello, spec) == ""
