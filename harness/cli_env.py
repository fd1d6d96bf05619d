"""`harness env up|status|down|check|reap|images`: the chaos environment by hand (registered into harness.cli).

`harness env up` keeps one user-facing environment per run root: it holds an exclusive
lock (`env-up.lock`) while it lives and describes itself in `env-up.json` (mode 0600,
the only place the credentials are written), which `status` and `down` read. With
`--detach` it runs as a background `harness env up` in a new session, logging to
`env-up.log`, and `harness env down` ends it. `--env compose` does the same with the
compose backend (what `make compose-up` / `compose-down` run). Exit codes as for every
command; `env status` says 1 when nothing is running, `env reap` 1 when it removed something.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil

from harness.cli import Terminated, command, signals_ignored, stop_signals
from harness.env import BACKENDS, Environment, Topology, make_environment
from harness.env.process import find_binary, http_ok, runs_root, tail
from harness.errors import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE, EnvError

STATE_NAME = "env-up.json"
LOCK_NAME = "env-up.lock"
LOG_NAME = "env-up.log"
STATE_VERSION = 1
DETACH_TIMEOUT = 30.0  # how long `up --detach` waits for the background env to be ready
DETACH_TIMEOUT_COMPOSE = 330.0  # `compose up` may pull images first (UP_TIMEOUT + readiness)
DOWN_TIMEOUT = 15.0  # how long `down` waits before escalating to SIGKILL


# -- the state file of `harness env up` ----------------------------------------------


def state_path() -> Path:
    return runs_root() / STATE_NAME


def log_path() -> Path:
    return runs_root() / LOG_NAME


@dataclasses.dataclass(frozen=True)
class EnvState:
    """What `harness env up` writes to `env-up.json` (credentials included; mode 0600)."""

    owner_pid: int
    owner_create_time: float
    backend: str
    detached: bool
    started_at: str
    endpoints: dict[str, str]
    user: str
    password: str = dataclasses.field(repr=False)
    rundir: str | None = None
    servers: tuple[dict[str, Any], ...] = ()  # {"name", "pid", "create_time"}
    project: str | None = None  # the compose project (compose backend)
    nodes: tuple[dict[str, str], ...] = ()  # a cluster's nodes: NodeEndpoints as dicts
    describe: str = ""

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["version"] = STATE_VERSION
        d["servers"] = list(self.servers)
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "EnvState":
        d = json.loads(text)
        d.pop("version", None)
        d["servers"] = tuple(d.get("servers") or ())
        d["nodes"] = tuple(d.get("nodes") or ())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def owner(self) -> psutil.Process | None:
        """The live owner process, or None if it is gone (or its pid was reused)."""
        return _live(self.owner_pid, self.owner_create_time)

    def live_servers(self) -> list[psutil.Process]:
        procs = (_live(int(s["pid"]), float(s["create_time"])) for s in self.servers)
        return [p for p in procs if p is not None]


def _live(pid: int, create_time: float) -> psutil.Process | None:
    try:
        p = psutil.Process(pid)
        if abs(p.create_time() - create_time) > 0.01 or p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p
    except psutil.Error:
        return None


def read_state() -> EnvState | None:
    """The state of the running `harness env up`, or None if there is none (or it is unreadable)."""
    try:
        return EnvState.from_json(state_path().read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:
        raise EnvError(
            f"cannot read {state_path()}: {e}",
            hint="remove the file if no `harness env up` is running",
        ) from None


def _write_state(state: EnvState) -> Path:
    """Write atomically, 0600 from the first byte (it holds the password)."""
    path = state_path()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(state.to_json())
    os.replace(tmp, path)
    return path


def _remove_state_if_mine() -> None:
    with contextlib.suppress(OSError, ValueError, EnvError):
        st = read_state()
        if st is not None and st.owner_pid == os.getpid():
            state_path().unlink()


@contextlib.contextmanager
def _up_lock() -> Iterator[None]:
    """One `harness env up` per run root: an flock the kernel drops when we die."""
    path = runs_root() / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            st = _safe_state()
            who = f" (pid {st.owner_pid})" if st is not None else ""
            raise EnvError(
                f"another `harness env up` is already running{who}",
                evidence=f"lock held: {path}",
                hint="`harness env status` shows it, `harness env down` stops it;"
                " or set NATS_CHAOS_RUN_ROOT to run a second one",
            ) from None
        yield
    finally:
        os.close(fd)


def _safe_state() -> EnvState | None:
    try:
        return read_state()
    except EnvError:
        return None


def _server_processes(env: Environment) -> tuple[dict[str, Any], ...]:
    """Pids of the servers a local environment runs (a compose one has none of its own)."""
    out = []
    for mp in env.processes():
        if mp.pid:
            with contextlib.suppress(psutil.Error):
                out.append({"name": mp.name, "pid": mp.pid, "create_time": psutil.Process(mp.pid).create_time()})
    return tuple(out)


# -- harness env ---------------------------------------------------------------------


@command("env")
def _register_env(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("env", help="start, inspect, stop or smoke-check the chaos environment")
    env_sub = p.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    up = env_sub.add_parser("up", help="start nats-server + Toxiproxy and keep them up until Ctrl-C")
    _add_env_options(up)
    up.add_argument("--detach", action="store_true", help="run in the background; stop with `harness env down`")
    up.add_argument("--detached-child", action="store_true", help=argparse.SUPPRESS)
    up.set_defaults(func=cmd_env_up)

    st = env_sub.add_parser("status", help="show the environment `harness env up` runs (exit 1 if none)")
    st.set_defaults(func=cmd_env_status)

    down = env_sub.add_parser("down", help="stop the environment `harness env up` runs")
    down.add_argument("--timeout", type=float, default=DOWN_TIMEOUT, help="seconds before SIGKILL (default 15)")
    down.set_defaults(func=cmd_env_down)

    check = env_sub.add_parser(
        "check", help="smoke check: env up, JetStream publish + consume through the proxy, down"
    )
    _add_env_options(check)
    check.set_defaults(func=cmd_env_check)

    images = env_sub.add_parser(
        "images", help="compose: build the local FROM-scratch nats and toxiproxy images (needs Go and a Docker API)"
    )
    images.add_argument("--exports", action="store_true", help="print `export NATS_IMAGE=...` lines for a shell")
    images.set_defaults(func=cmd_env_images)

    reap = env_sub.add_parser(
        "reap", help="remove what harness runs that died left behind (exit 1 if there was anything)"
    )
    reap.add_argument("--env", dest="backend", choices=BACKENDS, default="local", help="environment backend")
    reap.set_defaults(func=cmd_env_reap)


def _add_env_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", dest="backend", choices=BACKENDS, default="local", help="environment backend")
    for opt, what in (
        ("nats-port", "nats-server client port"),
        ("monitor-port", "nats-server monitoring port"),
        ("api-port", "Toxiproxy API port"),
        ("proxy-port", "Toxiproxy proxy listen port (what clients connect to)"),
    ):
        p.add_argument(f"--{opt}", type=_port, metavar="N", help=f"{what} (default: a free port)")
    p.add_argument("--ready-timeout", type=float, metavar="S", help="seconds to wait for readiness")
    p.add_argument("--cluster", type=_cluster, metavar="N",
                   help="a JetStream cluster of N nodes (3), every link through Toxiproxy (default: one server)")
    p.add_argument("--project", metavar="NAME", help="compose project name (compose only; default: nats-chaos-<random>)")


ENV_OPTIONS = ("nats_port", "monitor_port", "api_port", "proxy_port", "ready_timeout", "project", "cluster")
PORT_OPTIONS = ("nats_port", "monitor_port", "api_port", "proxy_port")


def _cluster(text: str) -> int:
    try:
        return Topology.parse(text).nodes
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {n}")
    return n


def _make_env(args: argparse.Namespace) -> Environment:
    kwargs = {key: getattr(args, key) for key in ENV_OPTIONS if getattr(args, key, None) is not None}
    if args.backend != "compose" and "project" in kwargs:
        raise EnvError("--project applies to the compose backend only", hint="leave it out, or add --env compose")
    topology = Topology.parse(kwargs.pop("cluster", None))
    ports = [k for k in PORT_OPTIONS if k in kwargs]
    if topology.is_cluster and ports:
        raise EnvError(f"--{ports[0].replace('_', '-')} applies to a single server",
                       hint="a cluster chooses free ports for its nodes; leave the port options out")
    return make_environment(args.backend, topology=topology, **kwargs)


def cmd_env_up(args: argparse.Namespace) -> int:
    """Start an environment and hold it until Ctrl-C / SIGTERM (or detach it)."""
    if args.detach:
        return _up_detached(args)
    with stop_signals():
        try:
            with _up_lock():
                return _up_foreground(args)
        except (KeyboardInterrupt, Terminated):
            return EXIT_CLEAN  # the environment was torn down on the way out


def _up_foreground(args: argparse.Namespace) -> int:
    env = _make_env(args)
    try:
        env.start()
        state = EnvState(
            owner_pid=os.getpid(),
            owner_create_time=psutil.Process().create_time(),
            backend=env.backend,
            detached=bool(args.detached_child),
            started_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            endpoints=dataclasses.asdict(env.endpoints),
            user=env.credentials.user,
            password=env.credentials.password,
            rundir=str(getattr(env, "rundir", None) or "") or None,
            servers=_server_processes(env),
            project=getattr(env, "project", None),
            nodes=tuple(dataclasses.asdict(n) for n in env.nodes_endpoints()) if env.is_cluster else (),
            describe=env.describe(),
        )
        path = _write_state(state)
        print(env.describe())
        if state.rundir:
            print(f"run dir:   {state.rundir}")
        print(f"state:     {path}  (mode 0600; holds the password)")
        print(
            "stop with `harness env down`" if args.detached_child else "up; Ctrl-C (or SIGTERM) stops it",
            flush=True,
        )
        return _hold(env)
    finally:
        with signals_ignored():
            _remove_state_if_mine()
            env.stop()


def _hold(env: Environment) -> int:
    """Wait for a stop signal; if a server dies on its own, say so and end (exit 2)."""
    while True:
        time.sleep(0.5)  # a signal handler raises out of this sleep at once
        dead = [mp for mp in env.processes() if mp.proc is not None and mp.proc.poll() is not None]
        if dead:
            mp = dead[0]
            raise EnvError(
                f"{mp.name} exited on its own (status {mp.proc.returncode}); stopping the environment",
                evidence=f"last lines of {mp.log_path}:\n{tail(mp.log_path, 20)}",
                hint="a killed or lame-ducked server is not restarted by `harness env up`; start it again",
            )


def _up_detached(args: argparse.Namespace) -> int:
    st = _safe_state()
    if st is not None and st.owner() is not None:
        raise EnvError(
            f"an environment is already running in the background (pid {st.owner_pid})",
            evidence=st.describe,
            hint="`harness env down` stops it; or set NATS_CHAOS_RUN_ROOT to run a second one",
        )
    if args.backend == "local":  # fail here, in one line, rather than in the background
        from harness.env.local import NATS_HOW, TOXI_HOW

        find_binary("NATS_SERVER_BIN", ["nats-server"], NATS_HOW)
        find_binary("TOXIPROXY_BIN", ["toxiproxy-server", "toxiproxy"], TOXI_HOW)
    argv = [sys.executable, "-m", "harness.cli", "env", "up", "--detached-child", "--env", args.backend]
    for key in ENV_OPTIONS:
        if getattr(args, key, None) is not None:
            argv += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    logf = log_path()
    with open(logf, "wb") as log:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    ready = False
    try:
        limit = DETACH_TIMEOUT_COMPOSE if args.backend == "compose" else DETACH_TIMEOUT
        deadline = time.monotonic() + limit
        delay = 0.005
        while True:
            if child.poll() is not None:
                sys.stderr.write(tail(logf, 40).rstrip() + "\n")
                return child.returncode or EXIT_USAGE
            st = _safe_state()
            if st is not None and st.owner_pid == child.pid:
                break
            if time.monotonic() > deadline:
                raise EnvError(
                    f"background `harness env up` not ready after {limit:.0f}s",
                    evidence=f"last lines of {logf}:\n{tail(logf, 20)}",
                    hint="run `harness env up` in the foreground to see what happens",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        ready = True
        print(st.describe)
        if st.rundir:
            print(f"run dir:   {st.rundir}")
        print(f"state:     {state_path()}  (mode 0600; holds the password)")
        print(f"log:       {logf}")
        print(f"running in the background (pid {child.pid}); stop with `harness env down`")
        return EXIT_CLEAN
    finally:
        if not ready and child.poll() is None:
            child.terminate()
            try:
                child.wait(DOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def cmd_env_status(args: argparse.Namespace) -> int:
    """Describe the running environment and probe it; exit 1 when nothing runs."""
    st = read_state()
    if st is None:
        print(f"no environment running (no {state_path()}); start one with `harness env up --detach`")
        return EXIT_FINDINGS
    owner = st.owner()
    if owner is None:
        with contextlib.suppress(FileNotFoundError):
            state_path().unlink()
        print(f"no environment running (its owner, pid {st.owner_pid}, is gone; removed the stale {state_path()})")
        return EXIT_FINDINGS
    print(st.describe)
    mode = "background" if st.detached else "foreground"
    print(f"owner:     pid {st.owner_pid} ({mode}, since {st.started_at})")
    if st.rundir:
        print(f"run dir:   {st.rundir}")
    print(f"state:     {state_path()}  (mode 0600; holds the password)")
    servers = {f"nats-server {n['name']}": n["monitor_url"] for n in st.nodes} or {
        "nats-server": st.endpoints["monitor_url"]
    }
    probes = {f"{name} /healthz": f"{url}/healthz" for name, url in servers.items()}
    probes["toxiproxy /version"] = f"{st.endpoints['toxiproxy_url']}/version"
    bad = []
    width = max(23, *(len(w) + 2 for w in probes))
    for what, url in probes.items():
        ok = http_ok(url, timeout=2.0)
        print(f"{what + ':':{width}}{'ok' if ok else 'NO ANSWER'}")
        if not ok:
            bad.append(what)
    if bad:
        raise EnvError(
            f"environment of pid {st.owner_pid} is up but {' and '.join(bad)} does not answer",
            hint="a paused or killed server? `harness env down` then `harness env up` starts afresh",
        )
    return EXIT_CLEAN


def cmd_env_down(args: argparse.Namespace) -> int:
    """SIGTERM the owner of the running environment and wait until its servers are gone."""
    st = read_state()
    if st is None:
        print("no environment running; nothing to stop")
        return EXIT_CLEAN
    owner = st.owner()
    procs = ([owner] if owner is not None else []) + st.live_servers()
    if owner is not None:
        with contextlib.suppress(psutil.Error):
            owner.terminate()
    else:
        for p in procs:  # the owner died without tearing down: end what it left
            with contextlib.suppress(psutil.Error):
                p.resume()
                p.terminate()
    alive = _wait_gone(procs, args.timeout)
    if alive:
        print(
            f"harness env down: {len(alive)} process(es) still alive after {args.timeout:.0f}s; sending SIGKILL",
            file=sys.stderr,
        )
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        alive = _wait_gone(alive, 5.0)
    if alive:
        raise EnvError(
            "some processes of the environment survived SIGKILL",
            evidence="\n".join(f"pid {p.pid}" for p in alive),
            hint="check them with `ps`; they may be stuck in the kernel",
        )
    if owner is None and st.project:  # the owner died without `compose down`: remove its stack
        from harness.env.compose import docker_client, remove_project

        left = remove_project(docker_client(), st.project)
        if left:
            raise EnvError(
                f"compose project {st.project}: could not remove {', '.join(left)}",
                hint=f"inspect with `docker ps -a --filter label=com.docker.compose.project={st.project}`",
            )
    with contextlib.suppress(FileNotFoundError):
        state_path().unlink()
    if st.rundir and Path(st.rundir).exists():
        from harness.env.process import reap_stale_runs

        reap_stale_runs()
    print(f"stopped the environment of pid {st.owner_pid}")
    return EXIT_CLEAN


def _gone(p: psutil.Process) -> bool:
    # A zombie has released everything; the detached owner's reaper (init) may be slow.
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited (or is a zombie); return those still alive."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    alive = [p for p in procs if not _gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
        alive = [p for p in alive if not _gone(p)]
    return alive


def cmd_env_images(args: argparse.Namespace) -> int:
    """Build the compose backend's local images; print their tags (or shell exports)."""
    from harness.env.compose import build_images

    for key, tag in build_images().items():
        print(f"export {key}={tag}" if args.exports else f"built {tag}  ({key})")
    return EXIT_CLEAN


def cmd_env_reap(args: argparse.Namespace) -> int:
    """Remove the servers / compose stacks of runs whose owner died; exit 1 if any were found."""
    if args.backend == "compose":
        from harness.env.compose import docker_client, reap_stale_projects

        client = docker_client()
        try:
            reaped = [f"compose project {p}" for p in reap_stale_projects(client)]
        finally:
            client.close()
    else:
        from harness.env.process import reap_stale_runs

        reaped = [f"process {pid}" for pid in reap_stale_runs()]
    for what in reaped:
        print(f"reaped {what} (its owner is gone)")
    return EXIT_FINDINGS if reaped else EXIT_CLEAN


def cmd_env_check(args: argparse.Namespace) -> int:
    """Start an environment, publish and consume a JetStream message through the proxy, stop."""
    timings: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def step(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        timings.append((name, time.perf_counter() - t0))

    env = _make_env(args)
    with stop_signals():
        try:
            with step("environment up (ready, proxy created)"):
                env.start()
            print(env.describe(), flush=True)
            asyncio.run(_smoke(env, step))
        finally:
            with signals_ignored():
                with step("environment down"):
                    env.stop()
    width = max(len(n) for n, _ in timings)
    for name, secs in timings:
        print(f"  {name:<{width}}  {secs * 1000:8.1f} ms")
    print("env check: ok")
    return EXIT_CLEAN


async def _publish_once_served(js: Any, subject: str, data: bytes, within: float = 10.0) -> Any:
    """Publish, again (bounded) while nobody answers yet ('no responders': nothing stored): on a
    cluster a new stream's leader and its interest reach the client's node a moment after the
    create's reply. nats.go's Publish retries no-responders the same way by default."""
    import nats.js.errors

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            return await js.publish(subject, data, timeout=5)
        except nats.js.errors.NoStreamResponseError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _smoke(env: Environment, step: Callable[[str], Any]) -> None:
    import nats
    import nats.errors
    from nats.js.api import StreamConfig

    subject = "chaos.check"
    try:
        with step("observer connect (direct)"):
            observer = await nats.connect(**env.connect_options(direct=True), connect_timeout=5, allow_reconnect=False)
        try:
            with step("client connect (through proxy)"):
                client = await nats.connect(**env.connect_options(), connect_timeout=5, allow_reconnect=False)
            try:
                with step("add stream (observer)"):
                    await observer.jetstream().add_stream(StreamConfig(name="CHAOS_CHECK", subjects=[subject]))
                js = client.jetstream()
                with step("publish through proxy (acked)"):
                    ack = await _publish_once_served(js, subject, b"ping")
                with step("pull fetch + ack through proxy"):
                    sub = await js.pull_subscribe(subject, durable="check")
                    msgs = await sub.fetch(1, timeout=5)
                    await msgs[0].ack_sync(timeout=5)
                if msgs[0].data != b"ping" or msgs[0].metadata.sequence.stream != ack.seq:
                    raise EnvError(
                        "env check: the message consumed is not the one published",
                        evidence=f"published seq {ack.seq}, got {msgs[0].data!r} seq {msgs[0].metadata.sequence.stream}",
                    )
                with step("stream info (observer)"):
                    info = await observer.jetstream().stream_info("CHAOS_CHECK")
                if info.state.messages != 1:
                    raise EnvError(f"env check: stream holds {info.state.messages} messages, expected 1")
            finally:
                await client.close()
        finally:
            await observer.close()
    except (nats.errors.Error, asyncio.TimeoutError, OSError) as e:
        raise EnvError(
            f"env check failed: {type(e).__name__}: {e}",
            evidence=f"last lines of the nats-server log:\n{env.server_log_tail(15)}",
            hint="run `harness env up` and connect by hand to look closer",
        ) from None
