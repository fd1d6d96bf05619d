"""A cluster port chosen free but taken before our node or proxy binds it: the cluster starts
again on fresh ports and never takes the other program for its own (readiness is checked on
our processes' own listening sockets). The other program is played by the test."""

from __future__ import annotations

from typing import Any

import pytest

from harness.env import cluster
from harness.env.cluster import LocalClusterEnvironment

from foreign_program import AnsweringHTTP


@pytest.mark.parametrize("role", ["api", "monitor1", "route01"])
def test_a_port_taken_before_its_bind_is_chosen_again(role: str, monkeypatch: Any) -> None:
    real = cluster.quiet_ports
    thieves: list[AnsweringHTTP] = []

    def choose_then_steal(wanted: dict[str, int | None]) -> dict[str, int]:
        ports = real(wanted)
        if not thieves:
            thieves.append(AnsweringHTTP(ports[role]))  # only the first start loses its port
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
