"""`ComposeClusterEnvironment`: a 3-node JetStream cluster as the containers of a Compose project.

The stack is `compose/docker-compose.cluster.yml`: nodes `n1`, `n2`, `n3` (the images, labels,
credentials and loopback-only ports of the single-server stack) and one Toxiproxy holding
every link, named as the local cluster names them (harness/env/cluster.py): the client
reaches node N through its proxy (`nats`, `nats-n2`, `nats-n3`), and the route node i
solicits from node j goes through `route-ni-nj` (listening on toxiproxy:70ij inside the
project's network, never published). The node configurations (`compose/cluster/nX.conf`)
keep clients and peers from learning real addresses, as the local cluster's do.

Everything but the topology is the single-server stack's (`ComposeEnvironment`): the Compose
CLI brings the project up and down, the Docker API finds its containers by label, owner
marks let the next run reap the project of a run that died, and a failed start tears down
before raising. Ready, as for the local cluster (`harness.env.cluster.not_ready`): every
node healthy with JetStream, every node naming one meta leader that counts every peer current,
every route up; then a NATS handshake through each client proxy. Node faults are container operations: kill
(SIGKILL), stop + start, pause / unpause (the cgroup freezer: sockets stay open, nothing
answers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import urllib.request
from typing import Any

from harness.env.base import NodeEndpoints, node_name
from harness.env.cluster import CLUSTER_NAME, ClusterNodes, client_proxy, not_ready
from harness.env.compose.connection import first_line
from harness.env.compose.images import COMPOSE_DIR
from harness.env.compose.stack import ComposeEnvironment, evidence_lines, restart_container
from harness.env.local import nats_handshake
from harness.env.process import http_ok
from harness.env.topology import CLUSTER3, Topology
from harness.errors import EnvError, StartupError

NODES = 3
COMPOSE_CLUSTER_FILE = COMPOSE_DIR / "docker-compose.cluster.yml"
READY_TIMEOUT = 30.0
# Port roles per node: the node's own client port (the observer), its monitoring, and the
# port its Toxiproxy proxy is published on (the client under test).
NODE_ROLES = ("nats", "monitor", "proxy")
CONTAINER_STATUS_EVERY = 0.5  # while waiting for readiness, how often the containers are asked whether they exited


@dataclasses.dataclass(frozen=True)
class ComposeNode:
    """One node of the compose cluster: its service (= server_name) and published ports."""

    index: int
    name: str
    ports: dict[str, int]  # nats, monitor, proxy (on 127.0.0.1)

    @property
    def direct_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['nats']}"

    @property
    def client_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['proxy']}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['monitor']}"

    @property
    def proxy(self) -> str:
        return client_proxy(self.index)

    @property
    def endpoints(self) -> NodeEndpoints:
        return NodeEndpoints(self.name, self.client_url, self.direct_url, self.monitor_url, self.proxy)


def port_role(node: int, role: str) -> str:
    """The key of node `node`'s (0-based) port `role` in the environment's ports: `n2.proxy`."""
    return f"{node_name(node)}.{role}"


class ComposeClusterEnvironment(ClusterNodes, ComposeEnvironment):
    """Three nats-server containers (a JetStream cluster) and one Toxiproxy container, on loopback ports."""

    node_counts = (NODES,)
    services = (*(node_name(i) for i in range(NODES)), "toxiproxy")

    def __init__(self, *, ready_timeout: float = READY_TIMEOUT, topology: Topology = CLUSTER3, **kwargs: Any) -> None:
        """Project, images, owner and timeouts as for ComposeEnvironment; every port is chosen free."""
        asked = [k for k in ("nats_port", "monitor_port", "api_port", "proxy_port") if kwargs.get(k) is not None]
        if asked:
            raise EnvError(f"--{asked[0].replace('_', '-')} applies to a single server",
                           hint="a cluster chooses free ports for its nodes; leave the port options out")
        kwargs.setdefault("compose_file", COMPOSE_CLUSTER_FILE)
        super().__init__(ready_timeout=ready_timeout, topology=topology, **kwargs)
        self._want = {port_role(i, r): None for i in range(NODES) for r in NODE_ROLES} | {"api": None}
        self.ready_seconds = 0.0  # start to ready, measured (make bench)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        super().start()
        self.ready_seconds = time.monotonic() - t0

    def _port_variables(self) -> dict[str, str]:
        out = {"CHAOS_TOXIPROXY_PORT": str(self._ports.get("api", 0))}
        for i in range(NODES):
            for role in NODE_ROLES:
                out[f"CHAOS_{node_name(i).upper()}_{role.upper()}_PORT"] = str(self._ports.get(port_role(i, role), 0))
        return out

    def _await_ready(self) -> None:
        self._poll("toxiproxy", lambda: http_ok(f"{self.toxiproxy_url}/version"), "answer on /version", watch=("toxiproxy",))
        self._versions["toxiproxy"] = self.toxiproxy.version()
        self.wait_ready()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Return once every node is healthy, a meta leader is elected and every route is up,
        and each client proxy hands out a NATS handshake. A container that exited fails at once."""
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        delay, asked = 0.01, 0.0
        while True:
            why = not_ready(list(self.nodes))
            if not why:
                lost = [n.proxy for n in self.nodes if not nats_handshake("127.0.0.1", n.ports["proxy"])]
                if not lost:
                    return
                why = f"no NATS handshake through proxy {', '.join(lost)}"
            if time.monotonic() - asked > CONTAINER_STATUS_EVERY:
                asked = time.monotonic()
                self._fail_if_exited()
            if time.monotonic() > deadline:
                raise StartupError(
                    f"the compose cluster is not ready after {self.ready_timeout:.0f}s: {why}",
                    evidence=self.server_log_tail(15),
                    hint="each node must be healthy, see a meta leader and a route to every other node"
                    " (through toxiproxy:70XY); `harness env up --env compose --cluster 3` starts it by hand",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _fail_if_exited(self) -> None:
        for service in self.services:
            c = self._container(service)
            c.reload()
            if c.status in ("exited", "dead"):
                raise StartupError(
                    f"{service} container exited (status {c.attrs['State'].get('ExitCode')}) before the cluster was ready",
                    evidence=f"--- last lines of {service}:\n{self._logs(service, evidence_lines(service))}",
                    hint="read the container log above; a node killed by a fault is started again by its heal",
                )

    # -- accessors ---------------------------------------------------------
    @property
    def nodes(self) -> list[ComposeNode]:  # type: ignore[override]
        if not self._ports:
            return []
        return [ComposeNode(i, node_name(i), {r: self._ports[port_role(i, r)] for r in NODE_ROLES}) for i in range(NODES)]

    def _toxiproxy_api(self) -> str:
        return f"http://127.0.0.1:{self._ports['api']}"

    def reset_proxy(self) -> None:
        """Every toxic removed and every proxy enabled (Toxiproxy's reset: the listeners stay),
        then the cluster's readiness again (a node healed from a fault catches up here)."""
        self.toxiproxy.reset()
        self.wait_ready()

    def versions(self) -> dict[str, str]:
        if "nats-server" not in self._versions and self._ports:
            with contextlib.suppress(OSError, ValueError, KeyError):
                req = urllib.request.Request(f"{self.monitor_url}/varz", headers={"User-Agent": "nats-chaos-harness"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    self._versions["nats-server"] = json.loads(r.read())["version"]
        return dict(self._versions)

    def describe(self) -> str:
        lines = [super().describe(), f"cluster:   {NODES} nodes ({CLUSTER_NAME}), routes through Toxiproxy (toxiproxy:70XY)"]
        for n in self.nodes:
            lines.append(f"  {n.name}: client {n.client_url} (proxy '{n.proxy}'), direct {n.direct_url}, "
                         f"monitor {n.monitor_url}")
        return "\n".join(lines)

    # -- nodes ---------------------------------------------------------------
    def kill_node(self, name: str) -> None:
        """SIGKILL node `name`'s container; returns once it has exited."""
        self.node(name)
        self._api(f"kill {name}", lambda c: c.kill(), name)
        self._wait_status(name, lambda s: s not in ("running", "paused"), "to exit after SIGKILL")

    def restart_node(self, name: str, wait: bool = True) -> None:
        """Stop node `name` (5 s grace) and start it again: same ports, same volume; with `wait`,
        until the cluster is ready."""
        self.node(name)
        self._api(f"restart {name}", restart_container, name)
        if wait:
            self.wait_ready()

    def pause_node(self, name: str) -> None:
        self.node(name)
        self._api(f"pause {name}", lambda c: c.pause(), name)

    def resume_node(self, name: str) -> None:
        self.node(name)
        self._api(f"unpause {name}", lambda c: c.unpause(), name)

    def node_running(self, name: str) -> bool:
        """Whether node `name`'s container runs (a paused one counts as running)."""
        self.node(name)
        try:
            c = self._container(name)
            c.reload()
        except EnvError:
            return False
        return c.status in ("running", "paused")

    def dead_components(self) -> list[tuple[str, str]]:
        """Containers of the cluster that no longer answer (asked once a scenario's faults are healed).

        A node is asked `/healthz?js-enabled-only=true` (alive, JetStream on): the full
        `/healthz` also fails while a replica catches up after a healed fault, which is no death."""
        out = []
        if not http_ok(f"{self.toxiproxy_url}/version", timeout=2.0):
            out.append(("toxiproxy-server", f"no answer on {self.toxiproxy_url}/version; {self._status_line('toxiproxy')}"))
        for n in self.nodes:
            if not http_ok(f"{n.monitor_url}/healthz?js-enabled-only=true", timeout=2.0):
                out.append((f"nats-server-{n.name}", f"no answer on {n.monitor_url}/healthz; {self._status_line(n.name)}\n"
                                                     f"last lines of its log:\n{self._logs(n.name, 15)}"))
        return out

    def _status_line(self, service: str) -> str:
        try:
            c = self._container(service)
            c.reload()
            return f"container {c.name}: {c.status} (exit code {c.attrs['State'].get('ExitCode')})"
        except Exception as e:  # the API itself failed: say so, the caller restarts the environment
            return f"container state unknown: {first_line(e)}"

    def lame_duck(self) -> None:
        # SIGUSR2 is nats-server's lame-duck signal; PID 1 in the container is nats-server itself.
        self._api("send SIGUSR2 to n1", lambda c: c.kill(signal="SIGUSR2"), node_name(0))

    def server_log_tail(self, lines: int = 40) -> str:
        out = []
        for i in range(NODES):
            try:
                out.append(f"-- {node_name(i)}\n{self._logs(node_name(i), lines)}")
            except EnvError as e:
                out.append(f"-- {node_name(i)}\n({e.summary})")
        return "\n".join(out)
