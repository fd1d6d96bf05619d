"""Stalls: the link (or the server) stops moving bytes, then heals."""

from __future__ import annotations

import socket
from typing import Any

from harness.env.process import http_ok
from harness.faults import register

STALL_PROBE = 0.3  # seconds a fresh handshake through the proxy must stay unanswered


def handshake_blocked(env: Any, within: float = STALL_PROBE) -> bool:
    """True if a new connection through the proxy gets no INFO within `within` seconds."""
    host, port = env.client_url.removeprefix("nats://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=within) as s:
            s.settimeout(within)
            return s.recv(5) != b"INFO "
    except (socket.timeout, TimeoutError):
        return True
    except OSError:
        return True  # refused/reset also means nothing flows


def _toxic_fault(name: str, type_: str, doc: str, **attrs: Any) -> None:
    toxic_name = f"fault_{name}"

    def inject(fx: Any) -> None:
        a = {**attrs, **{k: v for k, v in fx.scenario.fault_params.items() if k in attrs}}
        for stream in ("downstream", "upstream"):
            fx.env.toxiproxy.add_toxic(fx.env.proxy_name, type_, name=f"{toxic_name}_{stream}", stream=stream, **a)

    def heal(fx: Any) -> None:
        tp = fx.env.toxiproxy
        present = {t.name for t in tp.toxics(fx.env.proxy_name)}
        for stream in ("downstream", "upstream"):
            if f"{toxic_name}_{stream}" in present:
                tp.remove_toxic(fx.env.proxy_name, f"{toxic_name}_{stream}")

    def evidence(fx: Any) -> tuple[bool, str]:
        listed = sorted(t.name for t in fx.env.toxiproxy.toxics(fx.env.proxy_name) if t.name.startswith(toxic_name))
        blocked = handshake_blocked(fx.env)
        ok = len(listed) == 2 and blocked
        return ok, f"toxics {listed} on proxy; a fresh handshake through it {'got no INFO' if blocked else 'got INFO'} within {STALL_PROBE}s"

    register(f"stall.{name}", inject, heal, evidence, doc, params=attrs)


_toxic_fault("bandwidth0", "bandwidth", "bandwidth 0 both ways: bytes held, delivered on heal (no disconnect)", rate=0)
_toxic_fault("timeout", "timeout", "timeout toxic: data dropped; removing it closes the connection", timeout=0)
_toxic_fault("latency", "latency", "large latency (default 3000 ms) on every chunk", latency=3000, jitter=0)


def _upstream_inject(fx: Any) -> None:
    fx.env.toxiproxy.add_toxic(fx.env.proxy_name, "bandwidth", name="fault_upstream", stream="upstream", rate=0)


def _upstream_heal(fx: Any) -> None:
    if any(t.name == "fault_upstream" for t in fx.env.toxiproxy.toxics(fx.env.proxy_name)):
        fx.env.toxiproxy.remove_toxic(fx.env.proxy_name, "fault_upstream")


def ping_unanswered(env: Any, within: float = STALL_PROBE) -> bool:
    """True if a fresh connection through the proxy gets its INFO but no answer to a PING
    within `within` seconds: the link towards the server is stalled, the way back is not."""
    host, port = env.client_url.removeprefix("nats://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=within) as s:
            s.settimeout(within)
            buf = b""
            while b"\r\n" not in buf:  # the server's INFO line arrives: downstream flows
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
            s.sendall(b"PING\r\n")  # before CONNECT the server answers -ERR or PONG, or closes: it got it
            s.recv(64)
            return False
    except (socket.timeout, TimeoutError):
        return True
    except OSError:
        return False


def _upstream_evidence(fx: Any) -> tuple[bool, str]:
    listed = [t.name for t in fx.env.toxiproxy.toxics(fx.env.proxy_name) if t.name == "fault_upstream"]
    unanswered = ping_unanswered(fx.env)
    return bool(listed) and unanswered, (
        f"toxics {listed} on proxy; a fresh connection's PING {'got no answer' if unanswered else 'was answered'} "
        f"within {STALL_PROBE}s")


register("stall.upstream", _upstream_inject, _upstream_heal, _upstream_evidence,
         "bandwidth 0 towards the server only: what the client sends is held (delivered on heal), what the server sends flows")


def _pause(fx: Any) -> None:
    fx.env.pause_server()


def _resume(fx: Any) -> None:
    fx.env.resume_server()


def _pause_evidence(fx: Any) -> tuple[bool, str]:
    answered = http_ok(f"{fx.env.monitor_url}/healthz", timeout=STALL_PROBE)
    return (not answered), f"/healthz {'answered' if answered else 'unanswered'} within {STALL_PROBE}s while paused"


register("stall.pause", _pause, _resume, _pause_evidence, "server frozen (SIGSTOP / container pause), then resumed")
