"""Chaos environments: where nats-server and Toxiproxy run (`local` processes or `compose`)."""

from __future__ import annotations

from harness.env.base import Credentials, Endpoints, Environment
from harness.errors import EnvError

BACKENDS = ("local", "compose")


def make_environment(backend: str = "local", **kwargs: object) -> Environment:
    """Build (not start) an environment of the named backend."""
    if backend == "local":
        from harness.env.local import LocalEnvironment

        return LocalEnvironment(**kwargs)  # type: ignore[arg-type]
    if backend == "compose":
        from harness.env.compose import ComposeEnvironment

        return ComposeEnvironment(**kwargs)  # type: ignore[arg-type]
    raise EnvError(f"unknown environment backend {backend!r}", hint=f"one of: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Credentials", "Endpoints", "Environment", "make_environment"]
