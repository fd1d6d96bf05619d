"""One target = a client target and a server target, both installed; what a run is about."""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.targets import AgentCommand, ClientTarget, ServerTarget, cache_root, implementation, parse_client, slug
from harness.targets.server import ensure_server


@dataclasses.dataclass(frozen=True)
class Target:
    client: ClientTarget
    server: ServerTarget
    command: AgentCommand

    @property
    def label(self) -> str:
        """`nats-py 2.8.0 / nats-server 2.12.8`: the run header's and the reports' name for it."""
        return f"{self.client.label} / {self.server.label}"

    def to_json(self) -> dict[str, Any]:
        return {"client": self.client.to_json(), "server": self.server.to_json()}


def resolve_target(client_spec: str | None, server_spec: str | None) -> Target:
    """Install (or find installed) the client and the server; TargetError on bad input."""
    cache = cache_root()
    wanted = parse_client(client_spec)
    client, command = implementation(wanted.impl).ensure(wanted, cache)
    server = ensure_server(server_spec, cache)
    return Target(client, server, command)


def target_slug(client_spec: str | None, server_spec: str | None) -> str:
    """A short id fragment for run ids: `nats-py-2.8.0` (+ `-srv-2.10.26` when a server is chosen)."""
    c = parse_client(client_spec)
    out = f"{c.impl}-{c.version}" if c.source == "release" else f"{c.impl}-path"
    if server_spec:
        out += "-srv-" + (server_spec if "/" not in server_spec else "path")
    return slug(out)
