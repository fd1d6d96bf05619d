"""Ports chosen free but taken before our server binds them: chosen again, with evidence.

`free_ports` picks ports the OS says are free and releases them; our servers bind them a
moment later. Another program (another run's server, any outgoing connection's ephemeral
port) can take one in between. nats-server then exits; toxiproxy-server logs the failure and
keeps running, so a readiness probe would be answered by the program holding the port.
Each test plays that other program on purpose.
"""

from __future__ import annotations

import socket
from typing import Iterator

import pytest

from harness.env import process
from harness.env.local import LocalEnvironment, nats_handshake

from foreign_program import AnsweringHTTP


class Thief:
    """Takes one of the ports `free_ports` hands out, right after it is chosen."""

    def __init__(self, role: str, http_ok: bool = False) -> None:
        self.role, self.http_ok = role, http_ok
        self.port: int | None = None
        self._sock: socket.socket | None = None
        self._server: AnsweringHTTP | None = None

    def take(self, port: int) -> None:
        self.port = port
        if self.http_ok:
            self._server = AnsweringHTTP(port)  # as a foreign toxiproxy (or any web server) would
        else:
            self._sock = socket.socket()
            self._sock.bind(("127.0.0.1", port))
            self._sock.listen()

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._sock is not None:
            self._sock.close()


@pytest.fixture
def thief(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Thief]:
    role, http_ok = request.param
    t = Thief(role, http_ok)
    real = process.free_ports

    def choose_then_steal(wanted: dict[str, int | None]) -> dict[str, int]:
        ports = real(wanted)
        if t.port is None and role in ports and wanted.get(role) is None:
            t.take(ports[role])  # only the first start loses its port
        return ports

    monkeypatch.setattr(process, "free_ports", choose_then_steal)
    try:
        yield t
    finally:
        t.release()


@pytest.mark.parametrize(
    "thief", [("nats", False), ("monitor", True), ("api", True)], indirect=True, ids=["nats", "monitor", "api"]
)
def test_a_chosen_port_taken_before_our_server_binds_it_is_chosen_again(thief: Thief) -> None:
    with LocalEnvironment() as env:
        assert env.ports[thief.role] != thief.port
        assert len(env.port_retries) == 1, env.port_retries
        assert f"127.0.0.1:{thief.port} (chosen for {thief.role}) was taken" in env.port_retries[0]
        assert thief.port not in process.listening_ports(env.toxi.pid) | process.listening_ports(env.nats.pid)
        assert nats_handshake("127.0.0.1", env.ports["proxy"])


def test_the_proxy_moves_when_its_port_is_taken_while_it_is_recreated(own_env: LocalEnvironment) -> None:
    old = own_env.ports["proxy"]
    own_env.toxiproxy.delete_proxy(own_env.proxy_name)  # what reset_proxy does first
    with socket.socket() as s:
        s.bind(("127.0.0.1", old))
        s.listen()
        own_env.reset_proxy()
        assert own_env.ports["proxy"] != old and own_env.client_url.endswith(f":{own_env.ports['proxy']}")
        assert own_env.port_retries == [f"proxy: 127.0.0.1:{old} was taken while the proxy was recreated; "
                                        f"moved to 127.0.0.1:{own_env.ports['proxy']}"]
        assert nats_handshake("127.0.0.1", own_env.ports["proxy"])
