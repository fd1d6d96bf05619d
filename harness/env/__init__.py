"""Chaos environments: where nats-server and Toxiproxy run (`local` processes or `compose`),
in a topology (one node by default, or a cluster: `Topology(3)`).

The topology is a value every environment takes, not a backend of its own: a backend has
one class per node count it can run, and `make_environment` picks it.
"""

from __future__ import annotations

import importlib

from harness.env.base import Credentials, Endpoints, Environment, NodeEndpoints
from harness.env.topology import SINGLE, Topology
from harness.errors import EnvError

BACKENDS = ("local", "compose")
# (backend, nodes) -> "module:Class"; imported on use (the local backend needs no Docker SDK).
IMPLEMENTATIONS: dict[tuple[str, int], str] = {
    ("local", 1): "harness.env.local:LocalEnvironment",
    ("local", 3): "harness.env.cluster:LocalClusterEnvironment",
    ("compose", 1): "harness.env.compose:ComposeEnvironment",
    ("compose", 3): "harness.env.compose.cluster:ComposeClusterEnvironment",
}


def make_environment(backend: str = "local", topology: Topology = SINGLE, **kwargs: object) -> Environment:
    """Build (not start) an environment of the named backend and topology."""
    if backend not in BACKENDS:
        raise EnvError(f"unknown environment backend {backend!r}", hint=f"one of: {', '.join(BACKENDS)}")
    where = IMPLEMENTATIONS.get((backend, topology.nodes))
    if where is None:
        raise EnvError(f"no {topology.nodes}-node cluster on the {backend} backend yet",
                       hint="run cluster scenarios with --env local")
    module, name = where.split(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(topology=topology, **kwargs)  # type: ignore[no-any-return]


__all__ = ["BACKENDS", "Credentials", "Endpoints", "Environment", "NodeEndpoints", "Topology", "make_environment"]
