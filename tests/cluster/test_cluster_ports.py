"""A cluster port chosen free but taken before our node or proxy binds it: the cluster starts
again on fresh ports and never takes the other program for its own (readiness is checked on
our processes' own listening sockets). The other program is played by the test."""

from __future__ import annotations

import http.server
import threading
from typing import Any

import pytest

from harness.env import cluster
from harness.env.cluster import LocalClusterEnvironment


class Answering:
    """Listens on a port and answers every GET with 200 and JSON, as a foreign server would."""

    def __init__(self, port: int) -> None:
        class OK(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"version": "not ours"}')

            def log_message(self, *a: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", port), OK)
        self.hits = 0
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("role", ["api", "monitor1", "route01"])
def test_a_port_taken_before_its_bind_is_chosen_again(role: str, monkeypatch: Any) -> None:
    real = cluster.quiet_ports
    thieves: list[Answering] = []

    def choose_then_steal(wanted: dict[str, int | None]) -> dict[str, int]:
        ports = real(wanted)
        if not thieves:
            thieves.append(Answering(ports[role]))  # only the first start loses its port
        return ports

    monkeypatch.setattr(cluster, "quiet_ports", choose_then_steal)
    try:
        with LocalClusterEnvironment() as env:
            taken = thieves[0].server.server_address[1]
            assert env.port_retries and str(taken) in "\n".join(env.port_retries), env.port_retries
            used = {p for n in env.nodes for p in n.ports.values()} | set(env._route_ports.values())
            assert taken not in used and not env.endpoints.toxiproxy_url.endswith(f":{taken}")
            assert env.toxiproxy.version() != "not ours"
    finally:
        for t in thieves:
            t.close()
