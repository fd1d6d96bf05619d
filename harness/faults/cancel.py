"""The caller gives up: the flow's waiting call is cancelled (a task cancelled, a Go context
cancelled) or its caller's own deadline fires while it waits; then the flow goes on with the
same objects (the `continue.*` flows) and the checks judge that continuation.

Not a terminal event: the subscription, iterator, consumer and connection live on, and the
flow's next calls must work. Needs no link: giving up is the caller's own business, so under
a composite (`stall.bandwidth0+cancel.task`: the caller gives up during the stall, then the
heal) the cancelled call must still end at once.

Evidence is the agent's record that the waiting call *ended with a cancellation* (a
`waiting call ended` event whose end is `cancelled` or `deadline`). A call that had already
returned when the cancel came makes the scenario inconclusive; one that was cancelled and
never ended is the iterators check's finding (the flow stays pending past its deadline).
"""

from __future__ import annotations

from typing import Any

from harness.faults import NOT_TERMINAL, register

GAVE_UP = ("cancelled", "deadline")  # how a waiting call ends when the caller gave up


def _action(name: str, **fixed: Any) -> Any:
    def inject(fx: Any) -> None:
        params = {k: fx.scenario.fault_params.get(k, v) for k, v in _PARAMS[name].items()}
        fx.client_action(name, bound=fx.settings.stuck_after * 3, **params, **fixed)

    return inject


def cancel_evidence(issued: list[dict[str, Any]], ended: list[dict[str, Any]], wanted: int, answered: bool) -> tuple[bool, str]:
    """Whether the cancels took effect, from the agent's `cancel issued` and `waiting call
    ended` events since inject (pure: unit-tested on built events)."""
    if not issued:
        why = "no waiting call was in flight to cancel" if answered else "the cancel found no waiting call yet"
        return False, why
    gave_up = [e for e in ended if e.get("how") in GAVE_UP]
    other = [e for e in ended if e.get("how") not in GAVE_UP]
    if len(gave_up) >= wanted:
        calls = ", ".join(f"{e.get('label')} ({e.get('how')} after {e.get('took', 0):.2f}s)" for e in gave_up[:5])
        return True, f"{len(gave_up)} waiting call(s) ended with a cancellation: {calls}"
    if len(issued) > len(ended):  # a cancelled call that never ended: the iterators check's finding
        return True, f"{len(issued)} cancel(s) issued, {len(issued) - len(ended)} call(s) never ended after it"
    if other:
        e = other[0]
        return False, f"the waiting call {e.get('label')} ended by {e.get('how')} before the cancel took effect"
    return False, f"{len(gave_up)} of {wanted} waiting call(s) ended with a cancellation"


def _evidence(wanted_param: str = "") -> Any:
    def evidence(fx: Any) -> tuple[bool, str]:
        issued = fx.events_since_inject(lambda e: e.get("ev") == "cancel issued")
        ended = fx.events_since_inject(lambda e: e.get("ev") == "waiting call ended")
        wanted = int(fx.scenario.fault_params.get(wanted_param, 1)) if wanted_param else 1
        return cancel_evidence(issued, ended, wanted, fx.action_result is not None)

    return evidence


def _noop(fx: Any) -> None:
    return None


_PARAMS: dict[str, dict[str, Any]] = {
    "cancel_task": {},
    "cancel_deadline": {"after": 0.2},  # the deadline fires this long after the trigger: while the call waits
    "cancel_repeat": {"cancels": 3},
    "cancel_race": {"cancels": 30, "ticks": 6},
}

register("cancel.task", _action("cancel_task"), _noop, _evidence(),
         "the caller cancels its waiting call (nats-py: the task waiting in it; nats.go: its context), then goes on",
         terminal=NOT_TERMINAL, client_action="cancel_task")
register("cancel.deadline", _action("cancel_deadline"), _noop, _evidence(),
         "the caller's own deadline around the waiting call (asyncio.timeout; a context deadline) fires while it waits",
         params=_PARAMS["cancel_deadline"], terminal=NOT_TERMINAL, client_action="cancel_deadline")
register("cancel.repeat", _action("cancel_repeat"), _noop, _evidence("cancels"),
         "the caller cancels `cancels` waiting calls in a row, each once the flow waits again",
         params=_PARAMS["cancel_repeat"], terminal=NOT_TERMINAL, client_action="cancel_repeat")
# The caller gives up as a message arrives: before each cancel the agent publishes one message on
# the flow's subject (counted as published after the waiting call), flushes, waits until the client
# has read it (nats-py: its `in_msgs` count moved; a fixed wait missed the window on a loaded
# machine) and lets the event loop turn 0..`ticks` times (a Go agent: sleeps up to `ticks` x 50 µs
# after an unflushed publish), so the cancel lands around the message's hand-over to the call; every one must reach the continuing caller
# (as the call's value, or through the next call). Needs a flow on the stream's subject.
register("cancel.race", _action("cancel_race"), _noop, _evidence(),
         "the caller cancels `cancels` waiting calls in a row, each as a message published on the flow's subject arrives",
         params=_PARAMS["cancel_race"], terminal=NOT_TERMINAL, client_action="cancel_race")
