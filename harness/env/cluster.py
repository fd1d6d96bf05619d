"""A three-node JetStream cluster as a local environment: every link through Toxiproxy.

Each node is a nats-server process with its own store dir, client port, monitoring port
and cluster port. The client reaches node N through its own proxy (`nats` for the first
node, then `nats-n2`, `nats-n3`); every route between two nodes goes through a proxy per
direction (`route-n1-n2` carries what n1 solicits from n2), so a fault can cut a client
link or a route link independently. `cluster { no_advertise: true }` keeps the servers
from telling clients their real addresses: a reconnect never bypasses the proxies.

Ready means: every node answers `/healthz?js-enabled-only=true`, `/jsz` names a meta
leader, and every node's `/routez` has a route to each other node. The same readiness is
asked again before each scenario (`reset_proxy`), so a scenario starts on a whole cluster.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.env.base import PROXY_NAME, Endpoints, Environment, NodeEndpoints, node_name
from harness.env.local import NATS_CONF, NATS_HOW, TOXI_HOW, _toxiproxy_version, nats_handshake
from harness.env.process import (
    ManagedProcess,
    fan_out,
    find_binary,
    free_ports,
    get_json,
    http_ok,
    listening_ports,
    new_rundir,
    port_taken,
    remove_rundir,
    tail,
)
from harness.env.topology import CLUSTER3, Topology
from harness.errors import EnvError, StartupError

NODES = 3
READY_TIMEOUT = 20.0
CLUSTER_NAME = "chaos"
START_ATTEMPTS = 3
PEER_ACTIVE_NS = 1_000_000_000  # the meta leader heard from every peer within this (ns, /jsz `active`)

# A node's `cluster {}` block, added to the single server's configuration (NATS_CONF).
CLUSTER_BLOCK = """\
cluster {{
  name: {cluster}
  listen: 127.0.0.1:{cluster_port}
  # clients are never told the nodes' real addresses: they stay behind their proxies
  no_advertise: true
  # nor are the other nodes: a route learnt by gossip (an implicit route) would go straight
  # to this node's real cluster port, around the route proxies, and a cut would not cut it.
  # Port 1 is privileged and nothing listens there: an implicit route is refused at once, and
  # the explicit routes (through the proxies) are the only ones.
  advertise: "127.0.0.1:1"
  routes: [
{routes}
  ]
}}
"""


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def quiet_ports(wanted: dict[str, int | None]) -> dict[str, int]:
    """Free loopback ports for the unset keys, chosen *below* the kernel's ephemeral range.

    A route proxy is disabled for a partition and its client proxies live across scenarios:
    a port from the ephemeral range (what bind(0) hands out) can be taken meanwhile by any
    outgoing connection on the machine, or by a parallel worker's pick, and the proxy then
    cannot listen again. Below the range only an explicit bind can take it. The picking
    sockets stay open until all are picked (no port twice)."""
    import random
    import socket

    lo, _ = _ephemeral_range()
    if lo <= 12000:
        return free_ports(wanted)
    rng = random.SystemRandom()
    held: list[socket.socket] = []
    out: dict[str, int] = {}
    try:
        for key, port in wanted.items():
            while port is None:
                cand = rng.randrange(10000, lo)
                s = socket.socket()
                try:
                    s.bind(("127.0.0.1", cand))
                except OSError:
                    s.close()
                    continue
                held.append(s)
                port = cand
            out[key] = port
        return out
    finally:
        for s in held:
            s.close()


def client_proxy(i: int) -> str:
    """The proxy the client reaches node i through (node 0's keeps the single-server name)."""
    return PROXY_NAME if i == 0 else f"{PROXY_NAME}-{node_name(i)}"


def route_proxy(i: int, j: int) -> str:
    """The proxy carrying the route node i solicits from node j."""
    return f"route-{node_name(i)}-{node_name(j)}"


@dataclasses.dataclass
class Node:
    """One nats-server of the cluster: its ports and its process."""

    index: int
    name: str
    ports: dict[str, int]  # nats, monitor, cluster, proxy
    argv: list[str] = dataclasses.field(default_factory=list)
    proc: ManagedProcess | None = None

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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    @property
    def endpoints(self) -> NodeEndpoints:
        return NodeEndpoints(self.name, self.client_url, self.direct_url, self.monitor_url, self.proxy)


def route_peers(routez: dict[str, Any] | None) -> dict[str, int]:
    """Route connections per remote server name, from one node's `/routez`."""
    out: dict[str, int] = {}
    for r in (routez or {}).get("routes") or []:
        name = r.get("remote_name") or r.get("remote_id", "?")
        out[name] = out.get(name, 0) + 1
    return out


HEALTHZ = "/healthz?js-enabled-only=true"
READY_PATHS = (HEALTHZ, "/routez", "/jsz")


def not_ready(nodes: list[Node]) -> str:
    """Why the cluster is not ready yet ("" once it is): health, meta leader, routes."""
    names = {n.name for n in nodes}
    leader = ""
    metas: dict[str, dict[str, Any]] = {}
    # Every node's three endpoints at once (asked before each scenario: one after another,
    # their sum was harness overhead)
    asks = [(n, path) for n in nodes for path in READY_PATHS]
    got = fan_out(lambda a: http_ok(f"{a[0].monitor_url}{a[1]}", timeout=1.0) if a[1] == HEALTHZ
                  else get_json(f"{a[0].monitor_url}{a[1]}"), asks)
    read = {(n.name, path): doc for (n, path), doc in zip(asks, got)}
    for n in nodes:
        if not read[(n.name, HEALTHZ)]:
            return f"{n.name}: no 200 on {HEALTHZ}"
        missing = names - {n.name} - set(route_peers(read[(n.name, "/routez")]))
        if missing:
            return f"{n.name}: no route to {', '.join(sorted(missing))} in /routez"
        metas[n.name] = (read[(n.name, "/jsz")] or {}).get("meta_cluster") or {}
        leader = leader or (metas[n.name].get("leader") or "")
    if not leader:
        return "no meta leader in /jsz"
    # Every node must name that leader: a node restarted within a second of its kill is still
    # "current, heard from within 1s" at the leader while it has not found the leader itself
    # (seen on compose: /healthz then failing on "JetStream has not established contact with a
    # meta leader" after restart_node had returned).
    if len({m.get("leader") or "" for m in metas.values()}) != 1:
        return "the nodes do not name one meta leader: " + ", ".join(
            f"{k}: {m.get('leader') or 'none'}" for k, m in sorted(metas.items()))
    # The meta leader must count every other node as a current, online peer: a node back
    # from a fault is otherwise still "offline" for placement (a new R3 stream is refused).
    peers = {r.get("name"): r for r in (metas.get(leader) or {}).get("replicas") or []}
    lagging = sorted(p for p in names - {leader} if p not in peers or peers[p].get("offline") or not peers[p].get("current")
                     or (peers[p].get("active") or 0) > PEER_ACTIVE_NS)
    if lagging:
        return f"meta leader {leader} does not count {', '.join(lagging)} as current, online and heard from within 1s"
    return ""


class ClusterNodes:
    """What a cluster environment answers from its `nodes` alone, local and compose alike:
    endpoints, the client's connect options, a node by name or index, its route proxies, and
    the server-level faults, which act on the first node (the one the client starts on).
    The class using it gives `nodes`, `_creds`, `_toxiproxy_api()` and the node operations."""

    nodes: Any
    _creds: Any

    def _toxiproxy_api(self) -> str:
        raise NotImplementedError

    def _started(self) -> None:
        if not self.nodes:
            raise EnvError("environment not started", hint=f"use it as `with {type(self).__name__}() as env:`")

    @property
    def endpoints(self) -> Endpoints:
        self._started()
        n = self.nodes[0]
        return Endpoints(client_url=n.client_url, direct_url=n.direct_url, monitor_url=n.monitor_url,
                         toxiproxy_url=self._toxiproxy_api())

    def nodes_endpoints(self) -> tuple[NodeEndpoints, ...]:
        self._started()
        return tuple(n.endpoints for n in self.nodes)

    def connect_options(self, *, direct: bool = False) -> dict[str, Any]:
        """Every node, in order (the client starts on the first one's proxy; the observer on
        the first node directly and fails over to the others if that node is killed)."""
        urls = [n.direct_url if direct else n.client_url for n in self.nodes]
        return {"servers": urls, "user": self._creds.user, "password": self._creds.password,
                "dont_randomize": True}

    def node(self, name_or_index: str | int) -> Any:
        for n in self.nodes:
            if name_or_index in (n.name, n.index):
                return n
        raise EnvError(f"no node {name_or_index!r} in this cluster",
                       hint=f"nodes: {', '.join(node_name(i) for i in range(NODES))}")

    def route_proxies(self, name: str) -> list[str]:
        """Every route proxy into or out of node `name` (cutting them all isolates it)."""
        i = self.node(name).index
        return [route_proxy(a, b) for a in range(NODES) for b in range(NODES) if a != b and i in (a, b)]

    # -- server-level faults (the first node: the one the client starts on) ------------
    def pause_node(self, name: str) -> None:
        raise NotImplementedError

    def resume_node(self, name: str) -> None:
        raise NotImplementedError

    def kill_node(self, name: str) -> None:
        raise NotImplementedError

    def restart_node(self, name: str, wait: bool = True) -> None:
        raise NotImplementedError

    def node_running(self, name: str) -> bool:
        raise NotImplementedError

    def pause_server(self) -> None:
        self.pause_node(node_name(0))

    def resume_server(self) -> None:
        self.resume_node(node_name(0))

    def kill_server(self) -> None:
        self.kill_node(node_name(0))

    def restart_server(self) -> None:
        self.restart_node(node_name(0))

    def server_running(self) -> bool:
        return bool(self.nodes) and self.node_running(node_name(0))


class LocalClusterEnvironment(ClusterNodes, Environment):
    """Three nats-server nodes (a JetStream cluster) and one toxiproxy-server, as children."""

    backend = "local"
    node_counts = (NODES,)

    def __init__(self, *, ready_timeout: float = READY_TIMEOUT, topology: Topology = CLUSTER3, **_: Any) -> None:
        super().__init__(ready_timeout=ready_timeout, topology=topology)
        self.rundir: Path | None = None
        self.nodes: list[Node] = []
        self.toxi: ManagedProcess | None = None
        self._api_port = 0
        self._route_ports: dict[tuple[int, int], int] = {}
        self.ready_seconds = 0.0  # start to ready, measured (make bench)
        self.port_retries: list[str] = []  # evidence: each start lost to a port another program took

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Start on fresh ports; a port taken between its pick and its bind (parallel workers
        start together) is a new attempt on other ports, up to START_ATTEMPTS."""
        t0 = time.monotonic()
        for attempt in range(START_ATTEMPTS):
            try:
                self._start_once()
                break
            except EnvError as e:
                taken = "address already in use" in str(e).lower()
                if not taken or attempt == START_ATTEMPTS - 1:
                    if self.port_retries:
                        e.evidence = "\n".join([*self.port_retries, e.evidence])
                    raise
                lost = port_taken(str(e))
                self.port_retries.append(f"start attempt {attempt + 1}: 127.0.0.1:{lost} was taken before our server "
                                         f"bound it ({e.summary}); ports chosen again")
                self.stop()
        self.ready_seconds = time.monotonic() - t0

    def _start_once(self) -> None:
        nats_bin = find_binary("NATS_SERVER_BIN", ["nats-server"], NATS_HOW)
        toxi_bin = find_binary("TOXIPROXY_BIN", ["toxiproxy-server", "toxiproxy"], TOXI_HOW)
        want: dict[str, int | None] = {"api": None}
        for i in range(NODES):
            for k in ("nats", "monitor", "cluster", "proxy"):
                want[f"{k}{i}"] = None
            for j in range(NODES):
                if i != j:
                    want[f"route{i}{j}"] = None
        ports = quiet_ports(want)
        self._api_port = ports["api"]
        self._route_ports = {(i, j): ports[f"route{i}{j}"] for i in range(NODES) for j in range(NODES) if i != j}
        self.rundir = new_rundir("cluster")
        self.nodes = [Node(i, node_name(i), {k: ports[f"{k}{i}"] for k in ("nats", "monitor", "cluster", "proxy")})
                      for i in range(NODES)]
        for n in self.nodes:
            store = self.rundir / f"jetstream-{n.name}"
            store.mkdir()
            conf = self.rundir / f"{n.name}.conf"
            conf.touch(mode=0o600)
            routes = ",\n".join(f"    nats-route://127.0.0.1:{self._route_ports[(n.index, j)]}"
                                for j in range(NODES) if j != n.index)
            block = CLUSTER_BLOCK.format(cluster=CLUSTER_NAME, cluster_port=n.ports["cluster"], routes=routes)
            conf.write_text(NATS_CONF.format(
                name=n.name, port=n.ports["nats"], monitor_port=n.ports["monitor"], store=store,
                user=self._creds.user, password=self._creds.password, cluster=block))
            n.argv = [nats_bin, "-c", str(conf)]
        self.toxi = ManagedProcess("toxiproxy-server", [toxi_bin, "-host", "127.0.0.1", "-port", str(self._api_port)],
                                   self.rundir)
        self.toxi.start()
        # The route proxies listen before the nodes start: a route solicited too early is
        # retried only after a second.
        # Readiness on our own process: toxiproxy-server logs a failed bind and keeps running,
        # so /version could be answered by whatever took the port (as LocalEnvironment does).
        toxi, api = self.toxi, self._api_port
        self.toxi.wait_ready(lambda: http_ok(f"{self.toxiproxy_url}/version") and api in listening_ports(toxi.pid),
                             self.ready_timeout, "answer on /version")
        tp = self.toxiproxy
        for (i, j), port in self._route_ports.items():
            tp.create_proxy(route_proxy(i, j), upstream=f"127.0.0.1:{self.nodes[j].ports['cluster']}",
                            listen=f"127.0.0.1:{port}")
        for n in self.nodes:
            self._start_node(n)
        self._versions["toxiproxy"] = _toxiproxy_version(self.toxiproxy.version(), toxi_bin)
        self._create_client_proxies()
        self.wait_ready(own=True)

    def _start_node(self, n: Node) -> None:
        assert self.rundir is not None
        n.proc = ManagedProcess(f"nats-server-{n.name}", n.argv, self.rundir)
        n.proc.start()

    def _create_client_proxies(self) -> None:
        tp = self.toxiproxy
        for n in self.nodes:
            tp.create_proxy(n.proxy, upstream=f"127.0.0.1:{n.ports['nats']}", listen=f"127.0.0.1:{n.ports['proxy']}")

    def wait_ready(self, timeout: float | None = None, own: bool = False) -> None:
        """Return once every node is healthy, a meta leader is elected and every route is up;
        with `own` (at start), once every node's ports are also listened on by that node's own
        process (a port taken before our node bound it would answer the probes for it)."""
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        delay = 0.01
        while True:
            for n in self.nodes:
                if not n.alive():
                    code = n.proc.proc.returncode if n.proc and n.proc.proc else None
                    raise StartupError(f"nats-server {n.name} exited during start-up (status {code})",
                                       evidence=n.proc.log_tail() if n.proc else "",
                                       hint="read its log above; `harness env up --cluster 3` starts it by hand")
            why = not_ready(self.nodes)
            if not why and own:
                why = self._not_own()
            if not why:
                return
            if time.monotonic() > deadline:
                raise StartupError(
                    f"the cluster is not ready after {self.ready_timeout:.0f}s: {why}",
                    evidence="\n".join(n.proc.log_tail() for n in self.nodes if n.proc),
                    hint="each node must be healthy, see a meta leader and a route to every other node")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _not_own(self) -> str:
        """A node port its own process does not listen on ("" if none)."""
        for n in self.nodes:
            mine = listening_ports(n.proc.pid) if n.proc is not None else set()
            for role in ("nats", "monitor", "cluster"):
                if n.ports[role] not in mine:
                    return f"{n.name}: 127.0.0.1:{n.ports[role]} ({role}) is not listened on by its own process"
        return ""

    def stop(self) -> None:
        for p in [self.toxi, *(n.proc for n in self.nodes)]:
            if p is not None:
                p.stop()
        if self.rundir is not None:
            remove_rundir(self.rundir)
            self.rundir = None

    # -- accessors ---------------------------------------------------------
    def _toxiproxy_api(self) -> str:
        return f"http://127.0.0.1:{self._api_port}"

    def reset_proxy(self) -> None:
        """Every toxic removed and every proxy enabled (Toxiproxy's reset: the listeners keep
        their ports, never given up between scenarios); then the cluster's readiness again (a
        node healed from a fault catches up here, not mid-scenario)."""
        self.toxiproxy.reset()
        self.wait_ready()
        shaken = fan_out(lambda n: nats_handshake("127.0.0.1", n.ports["proxy"]), self.nodes)
        for n, ok in zip(self.nodes, shaken):
            if not ok:
                raise StartupError(f"no NATS handshake through proxy {n.proxy}",
                                   evidence=f"127.0.0.1:{n.ports['proxy']} -> {n.direct_url}")

    def versions(self) -> dict[str, str]:
        if "nats-server" not in self._versions and self.nodes:
            out = subprocess.run([self.nodes[0].argv[0], "--version"], capture_output=True, text=True, timeout=10)
            self._versions["nats-server"] = out.stdout.strip().rsplit(" ", 1)[-1]
        return dict(self._versions)

    def describe(self) -> str:
        lines = [super().describe(), f"cluster:   {NODES} nodes ({CLUSTER_NAME}), routes through Toxiproxy"]
        for n in self.nodes:
            lines.append(f"  {n.name}: client {n.client_url} (proxy '{n.proxy}'), direct {n.direct_url}, "
                         f"monitor {n.monitor_url}, cluster 127.0.0.1:{n.ports['cluster']}")
        return "\n".join(lines)

    # -- nodes ---------------------------------------------------------------
    def kill_node(self, name: str) -> None:
        n = self.node(name)
        if n.proc is not None:
            n.proc.kill()

    def restart_node(self, name: str, wait: bool = True) -> None:
        """Start node `name` again (same ports, same store); with `wait`, until the cluster is ready."""
        n = self.node(name)
        if n.proc is not None:
            n.proc.stop()
        self._start_node(n)
        if wait:
            self.wait_ready()

    def pause_node(self, name: str) -> None:
        n = self.node(name)
        if n.proc is not None:
            n.proc.pause()

    def resume_node(self, name: str) -> None:
        n = self.node(name)
        if n.proc is not None:
            n.proc.signal(signal.SIGCONT)

    def node_running(self, name: str) -> bool:
        return self.node(name).alive()

    def lame_duck(self) -> None:
        n = self.nodes[0]
        if n.proc is not None:
            n.proc.signal(signal.SIGUSR2)

    def processes(self) -> list[ManagedProcess]:
        return [p for p in (self.toxi, *(n.proc for n in self.nodes)) if p is not None]

    def server_log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"-- {n.name}\n{tail(n.proc.log_path, lines)}" for n in self.nodes if n.proc)
