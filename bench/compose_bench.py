"""Figures for the compose backend: stack up to ready, and teardown; the same for the 3-node cluster.

"Ready" is what `ComposeEnvironment.start()` returns after: `compose up -d` finished,
nats-server answers /healthz on its published monitor port, Toxiproxy answers /version,
and a NATS INFO arrives through the proxy. For the cluster (`ComposeClusterEnvironment`):
every node healthy with JetStream, a meta leader that counts every peer current and that
every node names, every route up (through the route proxies), a NATS INFO through each
client proxy. Images are already present (pulls are not
measured). Needs a Docker API (Docker, or `scripts/podman-service.sh start`); without one
the figure is reported as skipped.
"""

from __future__ import annotations

import statistics
import time

ROUNDS = 3
TARGET_UP = 20.0
TARGET_DOWN = 10.0


def _line(what: str, samples: list[float], target: float) -> str:
    med = statistics.median(samples)
    return (
        f"  {what:<44} median {med:7.2f} s   (min {min(samples):.2f} s, max {max(samples):.2f} s,"
        f" n={len(samples)})   target <= {target:.0f} s"
    )


def run() -> list[str]:
    from harness.env.compose import (
        ComposeClusterEnvironment,
        ComposeEnvironment,
        compose_command,
        docker_host,
        docker_unavailable_reason,
    )
    from harness.errors import EnvError

    reason = docker_unavailable_reason()
    if reason is None:
        try:
            compose = " ".join(compose_command())
        except EnvError as e:
            reason = e.summary
    if reason is not None:
        return [f"  compose stack up to ready: skipped: {reason}"]
    ups, downs, images = _rounds(ComposeEnvironment)
    cluster_ups, cluster_downs, _ = _rounds(ComposeClusterEnvironment)
    return [
        f"  Docker API {docker_host()}, {compose}; images {images}",
        _line("compose stack up to ready", ups, TARGET_UP),
        _line("compose stack teardown (down -v, checked)", downs, TARGET_DOWN),
        _line("compose cluster (3 nodes) up to ready", cluster_ups, TARGET_UP),
        _line("compose cluster teardown (down -v, checked)", cluster_downs, TARGET_DOWN),
    ]


def _rounds(cls: type) -> tuple[list[float], list[float], str]:
    ups: list[float] = []
    downs: list[float] = []
    images = ""
    for _ in range(ROUNDS):
        env = cls()
        t0 = time.perf_counter()
        try:
            env.start()
            ups.append(time.perf_counter() - t0)
            images = f"{env.nats_image}, {env.toxiproxy_image}"
        finally:
            t1 = time.perf_counter()
            env.stop()
            downs.append(time.perf_counter() - t1)
    return ups, downs, images
