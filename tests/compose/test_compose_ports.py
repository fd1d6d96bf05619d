"""A port chosen free but taken before the engine publishes it: the stack comes up on ports
chosen again, with the evidence kept; a port asked for is never changed."""

from __future__ import annotations

import socket

import pytest

from harness.env import process
from harness.env.compose import ComposeEnvironment
from harness.env.local import nats_handshake

pytestmark = pytest.mark.compose


def test_a_chosen_port_taken_before_up_is_chosen_again(monkeypatch: pytest.MonkeyPatch) -> None:
    real = process.free_ports
    stolen: list[socket.socket] = []

    def choose_then_steal(wanted: dict[str, int | None]) -> dict[str, int]:
        ports = real(wanted)
        if not stolen and wanted.get("monitor") is None:
            s = socket.socket()  # another program takes the monitor port before `compose up`
            s.bind(("127.0.0.1", ports["monitor"]))
            s.listen()
            stolen.append(s)
        return ports

    monkeypatch.setattr(process, "free_ports", choose_then_steal)
    try:
        with ComposeEnvironment(ready_timeout=30) as env:
            lost = stolen[0].getsockname()[1]
            assert env.ports["monitor"] != lost
            assert len(env.port_retries) == 1 and f"127.0.0.1:{lost} (chosen for monitor) was taken" in env.port_retries[0]
            assert nats_handshake("127.0.0.1", env.ports["proxy"])
    finally:
        for s in stolen:
            s.close()
