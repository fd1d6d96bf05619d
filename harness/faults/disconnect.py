"""Disconnects: the client's connection is cut (and, for the server faults, the server goes away)."""

from __future__ import annotations

from typing import Any

from harness.faults import register


def saw_disconnect(fx: Any) -> tuple[bool, str]:
    ev = fx.event_since_inject(lambda e: e.get("ev") == "conn" and e.get("state") in ("disconnected", "closed"))
    if ev is None:
        return False, "the client reported no disconnect between inject and heal"
    return True, f"client reported '{ev['state']}' {ev['at'] - fx.injected_at:.3f}s after inject"


def _reset_inject(fx: Any) -> None:
    fx.env.toxiproxy.add_toxic(fx.env.proxy_name, "reset_peer", name="fault_reset", stream="downstream", timeout=0)


def _reset_heal(fx: Any) -> None:
    if any(t.name == "fault_reset" for t in fx.env.toxiproxy.toxics(fx.env.proxy_name)):
        fx.env.toxiproxy.remove_toxic(fx.env.proxy_name, "fault_reset")


register("disconnect.reset_peer", _reset_inject, _reset_heal, saw_disconnect, "TCP RST when the next data arrives")


def _limit_inject(fx: Any) -> None:
    n = int(fx.scenario.fault_params.get("bytes", 1024))
    fx.env.toxiproxy.add_toxic(fx.env.proxy_name, "limit_data", name="fault_limit", stream="downstream", bytes=n)


def _limit_heal(fx: Any) -> None:
    if any(t.name == "fault_limit" for t in fx.env.toxiproxy.toxics(fx.env.proxy_name)):
        fx.env.toxiproxy.remove_toxic(fx.env.proxy_name, "fault_limit")


register("disconnect.limit_data", _limit_inject, _limit_heal, saw_disconnect, "cut after N more bytes (fault_params.bytes)",
         params={"bytes": 1024})
register(
    "disconnect.proxy_down",
    lambda fx: fx.env.toxiproxy.disable(fx.env.proxy_name),
    lambda fx: fx.env.toxiproxy.enable(fx.env.proxy_name),
    saw_disconnect,
    "proxy disabled: listener and every connection closed, then enabled",
)


def _kill_evidence(fx: Any) -> tuple[bool, str]:
    ok, text = saw_disconnect(fx)
    return ok and not fx.server_was_running_at_inject, f"server running after kill: {fx.server_was_running_at_inject}; {text}"


register(
    "disconnect.kill",
    lambda fx: fx.env.kill_server(),
    lambda fx: fx.env.restart_server() if not fx.env.server_running() else None,
    _kill_evidence,
    "nats-server SIGKILLed; restarted on heal (same ports, same store)",
)
register(
    "disconnect.restart",
    lambda fx: fx.env.restart_server(),
    lambda fx: fx.env.restart_server() if not fx.env.server_running() else None,
    saw_disconnect,
    "nats-server stopped and started again on the same ports and store",
)
