"""Chaos environments: where nats-server and Toxiproxy run (`local` processes or `compose`)."""

from __future__ import annotations

from harness.env.base import Credentials, Endpoints, Environment
from harness.env.topology import SINGLE, Topology
from harness.errors import EnvError

BACKENDS = ("local", "compose")


def make_environment(backend: str = "local", topology: Topology = SINGLE, **kwargs: object) -> Environment:
    """Build (not start) an environment of the named backend and topology."""
    if topology.is_cluster:
        if backend == "local":
            from harness.env.cluster import LocalClusterEnvironment

            return LocalClusterEnvironment(**kwargs)  # type: ignore[arg-type]
        raise EnvError(f"no {topology.nodes}-node cluster on the {backend} backend yet",
                       hint="run cluster scenarios with --env local")
    if backend == "local":
        from harness.env.local import LocalEnvironment

        return LocalEnvironment(**kwargs)  # type: ignore[arg-type]
    if backend == "compose":
        from harness.env.compose import ComposeEnvironment

        return ComposeEnvironment(**kwargs)  # type: ignore[arg-type]
    raise EnvError(f"unknown environment backend {backend!r}", hint=f"one of: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Credentials", "Endpoints", "Environment", "Topology", "make_environment"]
