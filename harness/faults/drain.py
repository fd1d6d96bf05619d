"""Drains: the subscription or connection is ended under the flow (client side), or the server leaves."""

from __future__ import annotations

from typing import Any

from harness.faults import AT_INJECT, NOT_TERMINAL, register
from harness.faults.disconnect import saw_disconnect


def _action(name: str) -> Any:
    def inject(fx: Any) -> None:
        fx.client_action(name)

    return inject


def _action_evidence(fx: Any) -> tuple[bool, str]:
    a = fx.action_result
    if not fx.action_name:
        return False, "no client action was performed"
    if a is None:
        return True, f"{fx.action_name} was issued and has not returned yet"
    if a.get("error"):
        return True, f"{a['name']} was issued and raised {a['error']}"
    return True, f"{a['name']} returned after {a.get('took', 0):.3f}s"


def _noop(fx: Any) -> None:
    return None


# Each ends the flow's subscription (a terminal event for its pending calls) from inject;
# nc_drain and close also close the client's connection. A drain waits for the server
# (needs the link); unsubscribe and close need nothing from it, so they must return
# promptly even while the link is stalled.
for _name, _doc, _closes, _link in (
    ("sub_drain", "sub.drain() on the flow's subscription", False, True),
    ("unsubscribe", "sub.unsubscribe() on the flow's subscription", False, False),
    ("nc_drain", "nc.drain() on the client's connection", True, True),
    ("close", "nc.close() on the client's connection", True, False),
):
    register(f"drain.{_name}", _action(_name), _noop, _action_evidence, _doc,
             terminal=AT_INJECT, closes_client=_closes, client_action=_name, needs_link=_link)


def _ldm_evidence(fx: Any) -> tuple[bool, str]:
    log = fx.env.server_log_tail(80).lower()
    entered = "lame duck" in log
    ok, text = saw_disconnect(fx)
    return entered, f"server log {'shows' if entered else 'does not show'} lame duck mode; {text}"


register(
    "drain.lame_duck",
    lambda fx: fx.env.lame_duck(),
    lambda fx: fx.env.restart_server(),
    _ldm_evidence,
    "server enters lame-duck mode (asks clients to leave); restarted on heal; the client reconnects, its subscription lives on",
    # The server's drain, not the client's: the client reconnects to the restarted server
    # and its subscription lives on, so a pending call ends by its own timeout.
    terminal=NOT_TERMINAL,
)
