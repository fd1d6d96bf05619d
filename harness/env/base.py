"""The one interface every chaos environment implements (local processes, Docker Compose),
whatever its topology (one nats-server, or a cluster of nodes).

Callers never build URLs: they ask the environment. Credentials are kept apart
from URLs so that nothing printed or logged can carry them.

The topology is a value the environment takes (`Topology`, harness/env/topology.py); every
environment answers the same per-node questions (`nodes_endpoints()`, `node_endpoints(name)`,
`kill_node(name)`, ...). A single-node environment has one node, `n1`, whose faults are the
server faults; a cluster has `n1`..`nN`, and its server faults act on `n1`, the node the
client starts on.
"""

from __future__ import annotations

import abc
import dataclasses
import secrets
from typing import TYPE_CHECKING, Any

from harness.env.topology import SINGLE, Topology
from harness.errors import EnvError
from harness.toxiproxy import Toxiproxy

if TYPE_CHECKING:
    from harness.env.process import ManagedProcess

PROXY_NAME = "nats"
# The loopback ports an environment publishes, by role (Endpoints.on_loopback's keys).
PORT_ROLES = ("nats", "monitor", "api", "proxy")


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Per-run user and password the nats-server requires; never printed."""

    user: str
    password: str = dataclasses.field(repr=False)

    def __str__(self) -> str:
        return f"{self.user}:***"

    @classmethod
    def generate(cls) -> "Credentials":
        """Fresh per-run credentials. nats-server parses a value from the environment (the
        compose stack passes them so) like a config value: it must start with a letter and hold
        only [A-Za-z0-9_-], so both are made of a letter prefix and hex digits."""
        return cls(user=f"chaos-{secrets.token_hex(4)}", password=f"p{secrets.token_hex(24)}")


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where the pieces of a running environment answer (all loopback, no credentials)."""

    client_url: str  # nats:// through the Toxiproxy proxy: the client under test uses this
    direct_url: str  # nats:// straight to nats-server: the observer uses this
    monitor_url: str  # http:// nats-server monitoring (/healthz, /jsz, /connz, /subsz)
    toxiproxy_url: str  # http:// Toxiproxy API

    @classmethod
    def on_loopback(cls, ports: dict[str, int]) -> "Endpoints":
        """Endpoints for ports published on 127.0.0.1 (keys: proxy, nats, monitor, api)."""
        return cls(
            client_url=f"nats://127.0.0.1:{ports['proxy']}",
            direct_url=f"nats://127.0.0.1:{ports['nats']}",
            monitor_url=f"http://127.0.0.1:{ports['monitor']}",
            toxiproxy_url=f"http://127.0.0.1:{ports['api']}",
        )


def node_name(i: int) -> str:
    """The name of node i (0-based): n1, n2, ... (a single server is n1)."""
    return f"n{i + 1}"


@dataclasses.dataclass(frozen=True)
class NodeEndpoints:
    """Where one nats-server node answers (all loopback, no credentials)."""

    name: str  # n1, n2, ...
    client_url: str  # nats:// through this node's Toxiproxy proxy (the client under test)
    direct_url: str  # nats:// straight to the node (the observer)
    monitor_url: str  # http:// the node's monitoring (/healthz, /jsz, /routez, ...)
    proxy: str  # the name of this node's client proxy in Toxiproxy


class Environment(abc.ABC):
    """A nats-server (JetStream on) behind a Toxiproxy proxy, with server-level faults.

    Use as a context manager: `__enter__` starts and waits for readiness (and tears
    down whatever it started if that fails), `__exit__` stops everything.
    """

    backend: str = "?"
    # The topologies this class runs (node counts); make_environment picks the class by topology.
    node_counts: tuple[int, ...] = (1,)

    def __init__(
        self,
        *,
        nats_port: int | None = None,
        monitor_port: int | None = None,
        api_port: int | None = None,
        proxy_port: int | None = None,
        ready_timeout: float,
        topology: Topology = SINGLE,
    ) -> None:
        """Ports asked for (None: a free one is chosen at start), the readiness bound, the topology."""
        if topology.nodes not in self.node_counts:
            raise EnvError(
                f"{type(self).__name__} runs {' or '.join(map(str, self.node_counts))} node(s), not {topology.nodes}",
                hint="build environments with harness.env.make_environment(backend, topology=...)",
            )
        self.topology = topology
        self._want: dict[str, int | None] = {
            "nats": nats_port, "monitor": monitor_port, "api": api_port, "proxy": proxy_port,
        }
        self.ready_timeout = ready_timeout
        self._ports: dict[str, int] = {}
        self._creds = Credentials.generate()
        self._versions: dict[str, str] = {}

    def _check_asked_ports(self) -> None:
        """Raise EnvError if a port asked for is asked twice or already in use."""
        from harness.env.process import port_in_use

        asked = [p for p in self._want.values() if p is not None]
        if len(asked) != len(set(asked)):
            raise EnvError(
                f"the same port is requested twice: {', '.join(f'{k}={v}' for k, v in self._want.items() if v)}",
                hint="nats, monitor, api and proxy each need a port of their own",
            )
        for key, port in self._want.items():
            if port is not None and port_in_use(port):
                raise EnvError(
                    f"port 127.0.0.1:{port} (requested for {key}) is already in use",
                    hint="pick another port or leave it unset so a free one is chosen",
                )

    def _claim_ports(self) -> dict[str, int]:
        """The ports asked for (checked) plus free ones for the rest; the caller binds them at once."""
        from harness.env.process import free_ports

        self._check_asked_ports()
        return free_ports(self._want)

    # -- lifecycle ---------------------------------------------------------
    @abc.abstractmethod
    def start(self) -> None:
        """Start the servers, create the proxy, return once ready (evidence, not sleeps)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop everything this environment started; safe to call twice."""

    def __enter__(self) -> "Environment":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- accessors ---------------------------------------------------------
    @property
    def endpoints(self) -> Endpoints:
        """URLs of the running environment."""
        if not self._ports:
            raise EnvError("environment not started", hint=f"use it as `with {type(self).__name__}() as env:`")
        return Endpoints.on_loopback(self._ports)

    @property
    def credentials(self) -> Credentials:
        """The per-run credentials nats-server requires."""
        return self._creds

    @property
    def ports(self) -> dict[str, int]:
        """The loopback ports in use, by role (empty before start)."""
        return dict(self._ports)

    # -- nodes (one for a single server) ---------------------------------------
    @property
    def is_cluster(self) -> bool:
        return self.topology.is_cluster

    def nodes_endpoints(self) -> tuple[NodeEndpoints, ...]:
        """Every node's endpoints, in order (the client starts on the first)."""
        e = self.endpoints
        return (NodeEndpoints(node_name(0), e.client_url, e.direct_url, e.monitor_url, self.proxy_name),)

    def node_endpoints(self, name: str) -> NodeEndpoints:
        """One node's endpoints; EnvError naming the nodes if there is no such node."""
        nodes = self.nodes_endpoints()
        for n in nodes:
            if n.name == name:
                return n
        raise EnvError(f"no node {name!r} in this environment", hint=f"nodes: {', '.join(n.name for n in nodes)}")

    def monitor(self, name: str, path: str, timeout: float = 1.0) -> dict[str, Any] | None:
        """A node's monitoring endpoint (`/jsz?...`, `/routez`) as JSON, None if it does not answer."""
        from harness.env.process import get_json

        return get_json(f"{self.node_endpoints(name).monitor_url}{path}", timeout=timeout)

    def monitor_all(self, path: str, timeout: float = 1.0) -> dict[str, dict[str, Any] | None]:
        """Every node's monitoring endpoint `path` as JSON (None where a node does not answer),
        by node name in node order; the nodes are asked at once (a paused node costs its
        timeout once, not once per node after it)."""
        from harness.env.process import fan_out, get_json

        nodes = self.nodes_endpoints()
        docs = fan_out(lambda n: get_json(f"{n.monitor_url}{path}", timeout=timeout), nodes)
        return {n.name: d for n, d in zip(nodes, docs)}

    # Per-node server faults. A single-node environment's one node is its server; a cluster
    # overrides these (and its server faults act on its first node).
    def pause_node(self, name: str) -> None:
        self.node_endpoints(name)
        self.pause_server()

    def resume_node(self, name: str) -> None:
        self.node_endpoints(name)
        self.resume_server()

    def kill_node(self, name: str) -> None:
        self.node_endpoints(name)
        self.kill_server()

    def restart_node(self, name: str, wait: bool = True) -> None:
        """Start node `name` again (same ports, same store); with `wait`, until it is ready."""
        self.node_endpoints(name)
        self.restart_server()

    def node_running(self, name: str) -> bool:
        self.node_endpoints(name)
        return self.server_running()

    def processes(self) -> list["ManagedProcess"]:
        """The server processes this environment runs itself (none for containers)."""
        return []

    @property
    def client_url(self) -> str:
        return self.endpoints.client_url

    @property
    def direct_url(self) -> str:
        return self.endpoints.direct_url

    @property
    def monitor_url(self) -> str:
        return self.endpoints.monitor_url

    @property
    def toxiproxy_url(self) -> str:
        return self.endpoints.toxiproxy_url

    @property
    def toxiproxy(self) -> Toxiproxy:
        """A client for this environment's Toxiproxy API."""
        return Toxiproxy(self.toxiproxy_url)

    @property
    def proxy_name(self) -> str:
        return PROXY_NAME

    def connect_options(self, *, direct: bool = False) -> dict[str, Any]:
        """Keyword arguments for `nats.connect(**opts)`: through the proxy, or direct."""
        creds = self.credentials
        url = self.direct_url if direct else self.client_url
        return {"servers": [url], "user": creds.user, "password": creds.password}

    @abc.abstractmethod
    def reset_proxy(self) -> None:
        """Recreate the proxy to nats-server: no toxics, enabled, same listen address."""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of nats-server and Toxiproxy, for the run header."""

    # -- server-level faults -----------------------------------------------
    @abc.abstractmethod
    def pause_server(self) -> None:
        """Freeze nats-server (SIGSTOP / container pause): sockets stay open, nothing answers."""

    @abc.abstractmethod
    def resume_server(self) -> None:
        """Undo `pause_server`."""

    @abc.abstractmethod
    def kill_server(self) -> None:
        """Kill nats-server abruptly (SIGKILL): connections drop."""

    @abc.abstractmethod
    def restart_server(self) -> None:
        """Start nats-server again on the same ports and store; returns once ready."""

    @abc.abstractmethod
    def lame_duck(self) -> None:
        """Put nats-server into lame-duck mode (it tells clients to leave, then exits)."""

    @abc.abstractmethod
    def server_running(self) -> bool:
        """Whether nats-server is up (not killed; a paused server counts as running)."""

    @abc.abstractmethod
    def server_log_tail(self, lines: int = 40) -> str:
        """The last lines of nats-server's log (evidence for errors and reports)."""

    def dead_components(self) -> list[tuple[str, str]]:
        """Servers of this environment that no longer answer, as (name, evidence).

        Asked after each scenario, once its faults are healed: a server down then died
        outside a fault (the run records it and restarts the environment).
        """
        from harness.env.process import http_ok, tail

        procs = self.processes()
        if procs:  # our own children: their exit status and log say it all
            return [
                (mp.name, f"{mp.name} (pid {mp.pid}) exited with status {mp.proc.poll() if mp.proc else None}; "
                          f"last lines of {mp.log_path}:\n{tail(mp.log_path, 15)}")
                for mp in procs if not mp.alive()
            ]
        out = []
        if not http_ok(f"{self.toxiproxy_url}/version", timeout=2.0):
            out.append(("toxiproxy-server", f"no answer on {self.toxiproxy_url}/version"))
        if not http_ok(f"{self.monitor_url}/healthz", timeout=2.0):
            out.append(("nats-server", f"no answer on /healthz; last lines of its log:\n{self.server_log_tail(15)}"))
        return out

    def describe(self) -> str:
        """Multi-line, credential-free description for `harness env up` and run headers."""
        e = self.endpoints
        return "\n".join(
            [
                f"backend:   {self.backend}",
                f"client:    {e.client_url}   (through Toxiproxy proxy '{self.proxy_name}')",
                f"direct:    {e.direct_url}",
                f"monitor:   {e.monitor_url}",
                f"toxiproxy: {e.toxiproxy_url}",
                f"user:      {self.credentials}",
            ]
        )
