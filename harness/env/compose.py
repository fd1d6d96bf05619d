"""The compose backend: nats-server and Toxiproxy as containers of a per-run Compose project.

The stack is `compose/docker-compose.yml`, brought up and down by the Compose CLI
(`docker compose` v2, else `docker-compose` v1). Everything else goes through the Docker
API (the `docker` SDK, honouring DOCKER_HOST, so a podman service works too): the
containers are found by their compose labels and only ever those of this run's project;
server faults are container operations (pause, kill, stop + start, SIGUSR2); container
logs are the evidence in errors. Each run gets its own project name, free loopback ports
and credentials; the credentials reach nats-server through the environment of `compose
up` and are scrubbed from every message.

`python -m harness.env.compose images|up|down|status` is the command line behind the
`compose-*` make targets (compose/compose.mk).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil

from harness.env.base import PROXY_NAME, Credentials, Endpoints, Environment
from harness.env.local import nats_handshake
from harness.env.process import PROJECT_ROOT, find_binary, free_ports, http_ok, port_in_use
from harness.errors import EnvError, MissingBinaryError, StartupError

COMPOSE_DIR = PROJECT_ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
BUILD_DIR = COMPOSE_DIR / ".build"
HEALTHCHECK_BIN = BUILD_DIR / "bin" / "healthcheck"
STATIC_TOXIPROXY_BIN = BUILD_DIR / "bin" / "toxiproxy-server"
STATE_DIR = PROJECT_ROOT / ".run" / "compose"

DEFAULT_NATS_IMAGE = "nats:2.12"
DEFAULT_TOXIPROXY_IMAGE = "ghcr.io/shopify/toxiproxy:2.12.0"
LOCAL_IMAGE_REPO = "localhost/nats-chaos"
TOXIPROXY_VERSION = "v2.12.0"

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# Set on both services from CHAOS_OWNER: "<pid>:<create time>" of the process that started
# the project, so that the next run can reap the stack of a run that was SIGKILLed.
OWNER_LABEL = "org.nats-chaos.owner"
PROJECT_PREFIX = "nats-chaos-"

UP_TIMEOUT = 300.0  # `compose up` may pull images on a first run
DOWN_TIMEOUT = 60.0
READY_TIMEOUT = 30.0
# Log lines quoted in errors: toxiproxy logs one long JSON line per connection.
EVIDENCE_LINES = {"nats": 40, "toxiproxy": 12}
API_TIMEOUT = 30

DOCKER_HINT = (
    "start Docker, or point DOCKER_HOST at a Docker-compatible API"
    " (here: `eval \"$(scripts/podman-service.sh start)\"`, see compose/README.md)"
)
IMAGES_HINT = "run `make compose-images` (builds the binaries and local images; needs Go)"


DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")
# Where scripts/podman-service.sh puts its socket (PODMAN_STATE moves it).
PODMAN_SOCKET = Path(os.environ.get("PODMAN_STATE") or PROJECT_ROOT / ".run" / "podman") / "podman.sock"


def docker_host() -> str:
    """The Docker API address: $DOCKER_HOST, else Docker's socket, else this project's podman service.

    The last one lets `make chaos ENV=compose` find the service `make compose-up` started.
    """
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if not DEFAULT_DOCKER_SOCKET.exists() and PODMAN_SOCKET.exists():
        return f"unix://{PODMAN_SOCKET}"
    return f"unix://{DEFAULT_DOCKER_SOCKET}"


def docker_client(timeout: int = API_TIMEOUT) -> Any:
    """A `docker.DockerClient` for `docker_host()` (raises EnvError if it does not answer)."""
    import docker  # deferred: the local backend needs no Docker SDK import

    host = docker_host()
    if host.startswith("unix://") and not os.path.exists(host[len("unix://") :]):
        raise EnvError(f"no Docker API: {host[len('unix://'):]} does not exist", hint=DOCKER_HINT)
    try:
        client = docker.DockerClient(base_url=host, timeout=timeout)
        client.ping()
    except Exception as e:  # the SDK raises DockerException, requests' and OSError alike
        raise EnvError(f"no Docker API at {host}: {_first_line(e)}", hint=DOCKER_HINT) from None
    return client


def docker_unavailable_reason() -> str | None:
    """None if a Docker API answers at `docker_host()`, else one line saying why not."""
    try:
        docker_client(timeout=5).close()
    except EnvError as e:
        return e.summary
    return None


def compose_command() -> list[str]:
    """The Compose CLI: $NATS_CHAOS_COMPOSE, else `docker compose` (v2), else `docker-compose` (v1)."""
    override = os.environ.get("NATS_CHAOS_COMPOSE")
    if override:
        return shlex.split(override)
    if shutil.which("docker"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            r = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=15)
            if r.returncode == 0:
                return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise MissingBinaryError(
        "no Compose CLI: neither `docker compose` nor `docker-compose` works",
        hint="install the Docker Compose plugin, or docker-compose (Debian: apt-get install docker-compose),"
        " or set NATS_CHAOS_COMPOSE to the command",
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def _owner_mark() -> str:
    me = psutil.Process()
    return f"{me.pid}:{me.create_time():.2f}"


def _owner_alive(mark: str) -> bool:
    try:
        pid, ct = mark.split(":")
        return abs(psutil.Process(int(pid)).create_time() - float(ct)) < 0.05
    except (ValueError, psutil.Error):
        return False


# -- images -----------------------------------------------------------------------


def build_healthcheck() -> Path:
    """Build compose/healthcheck into compose/.build/bin/healthcheck (static) if it is missing."""
    if HEALTHCHECK_BIN.is_file():
        return HEALTHCHECK_BIN
    # `docker compose up` run by hand before the build makes the missing bind source a directory.
    if HEALTHCHECK_BIN.is_dir():
        shutil.rmtree(HEALTHCHECK_BIN)
    _go_build(["build", "-trimpath", "-ldflags=-s -w", "-o", str(HEALTHCHECK_BIN), "."], COMPOSE_DIR / "healthcheck")
    return HEALTHCHECK_BIN


def build_static_toxiproxy() -> Path:
    """toxiproxy-server without libc (CGO_ENABLED=0): it must run in a FROM-scratch image."""
    if STATIC_TOXIPROXY_BIN.is_file():
        return STATIC_TOXIPROXY_BIN
    with tempfile.TemporaryDirectory(dir=BUILD_DIR) as gobin:
        _go_build(
            [
                "install",
                "-trimpath",
                # `go install` leaves Version at "git"; the release images say "2.12.0".
                f"-ldflags=-s -w -X github.com/Shopify/toxiproxy/v2.Version={TOXIPROXY_VERSION.lstrip('v')}",
                f"github.com/Shopify/toxiproxy/v2/cmd/server@{TOXIPROXY_VERSION}",
            ],
            COMPOSE_DIR,
            GOBIN=gobin,
        )
        shutil.move(os.path.join(gobin, "server"), STATIC_TOXIPROXY_BIN)
    return STATIC_TOXIPROXY_BIN


def _go_build(args: list[str], cwd: Path, **env: str) -> None:
    go = shutil.which("go")
    if go is None:
        raise MissingBinaryError("Go toolchain not found: needed to build the compose helper binaries", hint=IMAGES_HINT)
    (BUILD_DIR / "bin").mkdir(parents=True, exist_ok=True)
    # Containers are Linux whatever the host is (Docker Desktop on a Mac runs a Linux VM).
    target = {"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": os.environ.get("NATS_CHAOS_GOARCH") or _host_goarch()}
    r = subprocess.run([go, *args], cwd=cwd, env={**os.environ, **target, **env}, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise EnvError(f"`go {args[0]}` failed in {cwd}", evidence=r.stderr[-2000:], hint="check access to the Go module proxy")


def _host_goarch() -> str:
    machine = os.uname().machine.lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def local_image_tags() -> dict[str, str]:
    """Tags of the local FROM-scratch images, named after the binaries' versions."""
    nats_bin = find_binary("NATS_SERVER_BIN", ["nats-server"], "run `make setup`")
    out = subprocess.run([nats_bin, "--version"], capture_output=True, text=True, timeout=10).stdout
    version = out.strip().rsplit(" ", 1)[-1].lstrip("v") or "local"
    return {
        "NATS_IMAGE": f"{LOCAL_IMAGE_REPO}/nats:{version}",
        "TOXIPROXY_IMAGE": f"{LOCAL_IMAGE_REPO}/toxiproxy:{TOXIPROXY_VERSION.lstrip('v')}",
    }


def build_images(client: Any | None = None) -> dict[str, str]:
    """Build the local nats and toxiproxy images (FROM scratch) through the Docker API.

    Contexts are assembled under compose/.build/{nats,toxiproxy}/ from the Dockerfiles in
    compose/images/ and the static binaries. Returns {"NATS_IMAGE": tag, "TOXIPROXY_IMAGE": tag}.
    """
    client = client or docker_client(timeout=300)
    build_healthcheck()
    tags = local_image_tags()
    binaries = {
        "nats": (find_binary("NATS_SERVER_BIN", ["nats-server"], "run `make setup`"), "nats-server"),
        "toxiproxy": (str(build_static_toxiproxy()), "toxiproxy-server"),
    }
    for name, env_key in (("nats", "NATS_IMAGE"), ("toxiproxy", "TOXIPROXY_IMAGE")):
        ctx = BUILD_DIR / name
        shutil.rmtree(ctx, ignore_errors=True)
        ctx.mkdir(parents=True)
        src, dest = binaries[name]
        shutil.copy2(src, ctx / dest)
        shutil.copy2(COMPOSE_DIR / "images" / name / "Dockerfile", ctx / "Dockerfile")
        try:
            client.images.build(path=str(ctx), tag=tags[env_key], rm=True, pull=False)
        except Exception as e:
            raise EnvError(f"building image {tags[env_key]} failed: {_first_line(e)}", hint=f"context: {ctx}") from None
    return tags


# -- the environment ----------------------------------------------------------------


class ComposeEnvironment(Environment):
    """nats-server + Toxiproxy as the containers of one Compose project, on loopback ports."""

    backend = "compose"

    def __init__(
        self,
        *,
        project: str | None = None,
        nats_image: str | None = None,
        toxiproxy_image: str | None = None,
        nats_port: int | None = None,
        monitor_port: int | None = None,
        api_port: int | None = None,
        proxy_port: int | None = None,
        ready_timeout: float = READY_TIMEOUT,
        up_timeout: float = UP_TIMEOUT,
        compose_file: Path = COMPOSE_FILE,
        owner: str | None = None,
    ) -> None:
        self.project = project or f"{PROJECT_PREFIX}{secrets.token_hex(4)}"
        # Resolved in start(): argument > $NATS_IMAGE > local image if built > official image.
        self.nats_image = nats_image or os.environ.get("NATS_IMAGE") or ""
        self.toxiproxy_image = toxiproxy_image or os.environ.get("TOXIPROXY_IMAGE") or ""
        self._want = {"nats": nats_port, "monitor": monitor_port, "api": api_port, "proxy": proxy_port}
        self.ready_timeout = ready_timeout
        self.up_timeout = up_timeout
        self.compose_file = compose_file
        # "manual" stacks (make compose-up) are never reaped; a run's stack dies with its owner.
        self.owner = owner or _owner_mark()
        # nats-server parses an environment value like a config value: it must start with a
        # letter and hold only [A-Za-z0-9_-] (a leading digit breaks the parse).
        self._creds = Credentials(user=f"chaos-{secrets.token_hex(4)}", password=f"p{secrets.token_hex(24)}")
        self._ports: dict[str, int] = {}
        self._client: Any = None
        self._compose: list[str] | None = None
        self._up_called = False
        self._versions: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Bring the stack up and wait for readiness; on failure tear down first, then raise the cause."""
        try:
            self._start()
        except BaseException as e:
            try:
                self.stop()
            except EnvError as cleanup:
                # The cause stays first; what the cleanup could not remove comes after it.
                if isinstance(e, EnvError):
                    e.evidence = f"{e.evidence}\n--- and tearing down: {cleanup.summary}\n{cleanup.evidence}"
            raise

    def _start(self) -> None:
        self._client = docker_client()
        reap_stale_projects(self._client)
        if not HEALTHCHECK_BIN.is_file():
            build_healthcheck()
        self._compose = compose_command()
        self._resolve_images()
        for key, port in self._want.items():
            if port is not None and port_in_use(port):
                raise EnvError(
                    f"port 127.0.0.1:{port} (requested for {key}) is already in use",
                    hint="pick another port or leave it unset so a free one is chosen",
                )
        self._ports = free_ports(self._want)
        self._up_called = True  # from here on stop() has something to take down
        self._run_compose(["up", "-d", "--no-build"], self.up_timeout, "bring the stack up")
        self._wait_ready("nats", lambda: http_ok(f"{self.monitor_url}/healthz"), "200 on /healthz")
        self._wait_ready("toxiproxy", lambda: http_ok(f"{self.toxiproxy_url}/version"), "answer on /version")
        self._versions["toxiproxy"] = self.toxiproxy.version()
        self._wait_ready("toxiproxy", lambda: nats_handshake("127.0.0.1", self._ports["proxy"]), "NATS handshake through the proxy")

    def stop(self) -> None:
        """`compose down -v`, then make sure (through the API) nothing of the project is left."""
        if not self._up_called:
            return
        problems: list[str] = []
        client = self._client
        if client is not None:
            # A frozen container cannot be stopped gracefully (podman refuses outright).
            with contextlib.suppress(Exception):
                for c in self._containers():
                    if c.status == "paused":
                        c.unpause()
        try:
            if self._compose is not None:
                self._run_compose(["down", "-v", "--remove-orphans", "-t", "5"], DOWN_TIMEOUT, "take the stack down")
        except EnvError as e:
            problems.append(e.summary)
        if client is not None:
            left = remove_project(client, self.project)
            if left:
                problems.append("left behind: " + ", ".join(left))
            client.close()
        self._up_called = False
        self._client = None
        if problems:
            raise EnvError(
                f"compose project {self.project} not cleanly removed",
                evidence="\n".join(problems),
                hint=f"inspect with `docker ps -a --filter label={PROJECT_LABEL}={self.project}`",
            )

    # -- accessors ---------------------------------------------------------
    @property
    def endpoints(self) -> Endpoints:
        if not self._ports:
            raise EnvError("environment not started", hint="use it as `with ComposeEnvironment() as env:`")
        return Endpoints.on_loopback(self._ports)

    @property
    def credentials(self) -> Credentials:
        return self._creds

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._ports)

    def reset_proxy(self) -> None:
        tp = self.toxiproxy
        if PROXY_NAME in tp.proxies():
            tp.delete_proxy(PROXY_NAME)
        # Same as compose/toxiproxy.json: inside the toxiproxy container, published on 127.0.0.1.
        tp.create_proxy(PROXY_NAME, upstream="nats:4222", listen="0.0.0.0:4222")
        self._wait_ready("toxiproxy", lambda: nats_handshake("127.0.0.1", self._ports["proxy"]), "NATS handshake through the proxy")

    def versions(self) -> dict[str, str]:
        if "nats-server" not in self._versions:
            with contextlib.suppress(OSError, ValueError):
                req = urllib.request.Request(f"{self.monitor_url}/varz", headers={"User-Agent": "nats-chaos-harness"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    self._versions["nats-server"] = json.loads(r.read())["version"]
        return dict(self._versions)

    def describe(self) -> str:
        return "\n".join(
            [super().describe(), f"project:   {self.project}", f"images:    {self.nats_image}, {self.toxiproxy_image}"]
        )

    # -- server-level faults -----------------------------------------------
    def pause_server(self) -> None:
        self._api("pause nats", lambda c: c.pause())

    def resume_server(self) -> None:
        self._api("unpause nats", lambda c: c.unpause())

    def kill_server(self) -> None:
        self._api("kill nats", lambda c: c.kill())
        self._wait_status("nats", lambda s: s not in ("running", "paused"), "to exit after SIGKILL")

    def restart_server(self) -> None:
        def restart(c: Any) -> None:
            c.reload()
            if c.status == "paused":
                c.unpause()
            if c.status in ("running", "paused"):
                c.stop(timeout=5)
            c.start()

        self._api("restart nats", restart)
        self._wait_ready("nats", lambda: http_ok(f"{self.monitor_url}/healthz"), "200 on /healthz after restart")

    def lame_duck(self) -> None:
        # SIGUSR2 is nats-server's lame-duck signal; PID 1 in the container is nats-server itself.
        self._api("send SIGUSR2 to nats", lambda c: c.kill(signal="SIGUSR2"))

    def server_running(self) -> bool:
        try:
            c = self._container("nats")
            c.reload()
        except EnvError:
            return False
        return c.status in ("running", "paused")

    def server_log_tail(self, lines: int = 40) -> str:
        return self._logs("nats", lines)

    # -- internals -----------------------------------------------------------
    def _resolve_images(self) -> None:
        """Fill in unset images: the local build (`make compose-images`) if the engine has it, else the official one."""
        local: dict[str, str] = {}
        if not (self.nats_image and self.toxiproxy_image):
            with contextlib.suppress(Exception):
                local = local_image_tags()
        for attr, key, official in (
            ("nats_image", "NATS_IMAGE", DEFAULT_NATS_IMAGE),
            ("toxiproxy_image", "TOXIPROXY_IMAGE", DEFAULT_TOXIPROXY_IMAGE),
        ):
            if getattr(self, attr):
                continue
            chosen = official
            if key in local:
                with contextlib.suppress(Exception):
                    self._client.images.get(local[key])
                    chosen = local[key]
                if chosen == official and key == "NATS_IMAGE" and os.environ.get("NATS_SERVER_BIN"):
                    # A chosen server target (--server): its binary goes into a local image,
                    # built now if missing; never silently the official image of another version.
                    build_images(self._client)
                    chosen = local[key]
            setattr(self, attr, chosen)

    def _compose_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": docker_host(),  # the CLI must talk to the same API as the SDK
            "COMPOSE_PROJECT_NAME": self.project,
            "NATS_IMAGE": self.nats_image,
            "TOXIPROXY_IMAGE": self.toxiproxy_image,
            "NATS_USER": self._creds.user,
            "NATS_PASSWORD": self._creds.password,
            "CHAOS_OWNER": self.owner,
            "CHAOS_NATS_PORT": str(self._ports.get("nats", 0)),
            "CHAOS_MONITOR_PORT": str(self._ports.get("monitor", 0)),
            "CHAOS_PROXY_PORT": str(self._ports.get("proxy", 0)),
            "CHAOS_TOXIPROXY_PORT": str(self._ports.get("api", 0)),
        }

    def _run_compose(self, args: list[str], timeout: float, what: str) -> None:
        assert self._compose is not None
        cmd = [*self._compose, "-p", self.project, "-f", str(self.compose_file), *args]
        shown = " ".join(cmd)
        try:
            r = subprocess.run(
                cmd, env=self._compose_env(), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as e:
            out = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            raise StartupError(
                f"`{shown}` did not finish within {timeout:.0f}s (could not {what})",
                evidence=self._scrub(out[-2000:]),
                hint="is the Docker API slow or pulling images? try the command by hand",
            ) from None
        except OSError as e:
            raise MissingBinaryError(f"could not run `{shown}`: {e.strerror or e}", hint="install Docker Compose") from None
        if r.returncode != 0:
            evidence = self._scrub((r.stderr or r.stdout)[-2000:])
            for svc in ("nats", "toxiproxy"):
                with contextlib.suppress(EnvError):
                    evidence += f"\n--- last lines of {svc}:\n{self._logs(svc, EVIDENCE_LINES[svc])}"
            raise StartupError(
                f"`{shown}` failed with status {r.returncode} (could not {what})",
                evidence=evidence,
                hint=_compose_hint(r.stderr or "", self),
            )

    def _scrub(self, text: str) -> str:
        return text.replace(self._creds.password, "***") if self._creds.password else text

    def _containers(self, service: str | None = None) -> list[Any]:
        labels = [f"{PROJECT_LABEL}={self.project}"]
        if service:
            labels.append(f"{SERVICE_LABEL}={service}")
        return self._client.containers.list(all=True, filters={"label": labels})

    def _container(self, service: str) -> Any:
        if self._client is None:
            raise EnvError("environment not started", hint="call start() first")
        try:
            found = self._containers(service)
        except Exception as e:
            raise EnvError(f"Docker API call failed listing {service}: {_first_line(e)}", hint=DOCKER_HINT) from None
        if not found:
            raise EnvError(
                f"no {service} container in compose project {self.project}",
                hint=f"`docker ps -a --filter label={PROJECT_LABEL}={self.project}`",
            )
        return found[0]

    def _api(self, what: str, op: Callable[[Any], None]) -> None:
        c = self._container("nats")
        try:
            op(c)
        except Exception as e:
            raise EnvError(
                f"could not {what} ({c.name}): {_first_line(e)}",
                evidence=f"--- last lines of nats:\n{self._logs('nats', 20)}",
                hint="the container may already be stopped; `server_running()` tells",
            ) from None

    def _logs(self, service: str, lines: int) -> str:
        c = self._container(service)
        try:
            text = c.logs(tail=lines).decode(errors="replace")
        except Exception as e:
            text = f"(no logs: {_first_line(e)})"
        return self._scrub(text.rstrip())

    def _wait_status(self, service: str, ok: Callable[[str], bool], what: str) -> None:
        c = self._container(service)

        def reached() -> bool:
            c.reload()
            return ok(c.status)

        self._poll(service, reached, what, watch=())

    def _wait_ready(self, service: str, probe: Callable[[], bool], what: str) -> None:
        # A proxy handshake needs both containers: fail at once if either has exited.
        watch = ("nats", "toxiproxy") if service == "toxiproxy" else (service,)
        self._poll(service, probe, what, watch=watch)

    def _poll(self, service: str, probe: Callable[[], bool], what: str, *, watch: tuple[str, ...]) -> None:
        """Poll `probe` with capped backoff; fail at once if a watched container exits, or at the deadline."""
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.005
        while True:
            if probe():
                return
            for name in watch:
                c = self._container(name)
                c.reload()
                if c.status in ("exited", "dead"):
                    raise StartupError(
                        f"{name} container exited (status {c.attrs['State'].get('ExitCode')}) before {what}",
                        evidence=f"--- last lines of {name}:\n{self._logs(name, EVIDENCE_LINES[name])}",
                        hint=_log_hint(self._logs(name, 200)),
                    )
            if time.monotonic() > deadline:
                c = self._container(service)
                c.reload()
                raise StartupError(
                    f"{service} not ready after {self.ready_timeout:.1f}s: no {what}",
                    evidence=f"container {c.name}: {c.status}\n"
                    f"--- last lines of {service}:\n{self._logs(service, EVIDENCE_LINES[service])}",
                    hint=_log_hint(self._logs(service, 200)),
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _log_hint(log: str) -> str:
    low = log.lower()
    if "address already in use" in low:
        return "a port is taken inside the container; check the compose file"
    if "no such host" in low:
        return "toxiproxy cannot resolve `nats`: the nats container is not running (killed, or exited after lame duck)"
    if "could not be parsed" in low or "parse error" in low:
        return "NATS_USER/NATS_PASSWORD must start with a letter and hold only letters, digits, - and _"
    return "read the container log above; `make compose-up` starts the stack by hand for a closer look"


def _compose_hint(stderr: str, env: ComposeEnvironment) -> str:
    low = stderr.lower()
    if "no such image" in low or ("image" in low and ("not found" in low or "pull" in low)):
        return f"images {env.nats_image}, {env.toxiproxy_image} unavailable: pull them, or {IMAGES_HINT} and set NATS_IMAGE/TOXIPROXY_IMAGE"
    if "address already in use" in low or "port is already allocated" in low:
        return "a published port was taken between choosing it and binding it; run again"
    return "read the Compose output above; `make compose-up` runs the same stack by hand"


# -- cleanup ------------------------------------------------------------------------


def remove_project(client: Any, project: str) -> list[str]:
    """Remove (through the API) every container, network and volume of a compose project.

    Returns what could not be removed, as "kind name" strings (empty when clean).
    """
    label = {"label": [f"{PROJECT_LABEL}={project}"]}
    left: list[str] = []
    for c in _safe(lambda: client.containers.list(all=True, filters=label)):
        try:
            if c.status == "paused":
                c.unpause()
            c.remove(force=True, v=True)
        except Exception as e:
            if "no such container" not in str(e).lower():
                left.append(f"container {c.name}")
    for n in _safe(lambda: client.networks.list(filters=label)):
        try:
            n.remove()
        except Exception as e:
            if "not found" not in str(e).lower():
                left.append(f"network {n.name}")
    for v in _safe(lambda: client.volumes.list(filters=label)):
        try:
            v.remove(force=True)
        except Exception as e:
            if "no such volume" not in str(e).lower():
                left.append(f"volume {v.name}")
    return left


def _safe(listing: Callable[[], Iterable[Any]]) -> list[Any]:
    try:
        return list(listing())
    except Exception:
        return []


def project_resources(client: Any, project: str) -> list[str]:
    """Containers, networks and volumes still labelled with `project`, as "kind name" strings."""
    label = {"label": [f"{PROJECT_LABEL}={project}"]}
    return (
        [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
        + [f"network {n.name}" for n in client.networks.list(filters=label)]
        + [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    )


def reap_stale_projects(client: Any) -> list[str]:
    """Remove the stacks of earlier runs whose owner process is gone (e.g. SIGKILLed).

    Only projects whose containers carry our owner label are considered; a stack started
    by hand (`make compose-up`, owner "manual") is never touched. Returns the projects removed.
    """
    stale: set[str] = set()
    for c in _safe(lambda: client.containers.list(all=True, filters={"label": [OWNER_LABEL]})):
        owner = c.labels.get(OWNER_LABEL, "")
        project = c.labels.get(PROJECT_LABEL, "")
        if project.startswith(PROJECT_PREFIX) and owner not in ("", "manual") and not _owner_alive(owner):
            stale.add(project)
    for project in sorted(stale):
        remove_project(client, project)
    return sorted(stale)


# -- command line (behind compose/compose.mk) ----------------------------------------


def _state_file(project: str) -> Path:
    return STATE_DIR / f"{project}.json"


def _cmd_images(args: argparse.Namespace) -> int:
    tags = build_images()
    if args.env:
        for k, v in tags.items():
            print(f"export {k}={v}")
    else:
        for k, v in tags.items():
            print(f"built {v}  ({k})")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    running = project_resources(docker_client(), args.project)
    if running:
        state = _state_file(args.project)
        print(f"compose project {args.project} is already up ({', '.join(running)})", file=sys.stderr)
        print(f"its ports and credentials: {state}; `make compose-down` first to start afresh", file=sys.stderr)
        return 0
    # Fixed ports if asked (e.g. `make compose-up CHAOS_PROXY_PORT=4222`), else free ones.
    ports = {
        key: int(os.environ[var]) if os.environ.get(var) else None
        for key, var in (
            ("proxy_port", "CHAOS_PROXY_PORT"),
            ("nats_port", "CHAOS_NATS_PORT"),
            ("monitor_port", "CHAOS_MONITOR_PORT"),
            ("api_port", "CHAOS_TOXIPROXY_PORT"),
        )
    }
    env = ComposeEnvironment(project=args.project, owner="manual", **ports)
    t0 = time.monotonic()
    env.start()  # tears down by itself if it fails
    STATE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = _state_file(env.project)
    state.touch(mode=0o600)
    # The manual stack keeps its credentials in a mode-0600 file, never on the terminal.
    state.write_text(
        json.dumps(
            {
                "project": env.project,
                "user": env.credentials.user,
                "password": env.credentials.password,
                "ports": env.ports,
                "nats_image": env.nats_image,
                "toxiproxy_image": env.toxiproxy_image,
            },
            indent=2,
        )
    )
    print(env.describe())
    print(f"ready in {time.monotonic() - t0:.1f}s; credentials in {state} (mode 0600)")
    print("take it down with `make compose-down`")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    client = docker_client()
    state = _state_file(args.project)
    compose = compose_command()
    # `down` needs every variable the file requires; their values do not matter here.
    env = {
        **os.environ,
        "DOCKER_HOST": docker_host(),
        "NATS_USER": "x",
        "NATS_PASSWORD": "x",
        "COMPOSE_PROJECT_NAME": args.project,
    }
    r = subprocess.run(
        [*compose, "-p", args.project, "-f", str(COMPOSE_FILE), "down", "-v", "--remove-orphans", "-t", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=DOWN_TIMEOUT,
    )
    left = remove_project(client, args.project)
    state.unlink(missing_ok=True)
    if r.returncode != 0 and left:
        print(r.stderr.strip(), file=sys.stderr)
    if left:
        print(f"compose project {args.project}: could not remove {', '.join(left)}", file=sys.stderr)
        return 2
    print(f"compose project {args.project}: removed")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    reason = docker_unavailable_reason()
    if reason:
        print(reason)
        return 1
    client = docker_client()
    found = project_resources(client, args.project)
    print(f"Docker API at {docker_host()}: ok")
    print(f"compose project {args.project}: " + (", ".join(found) if found else "nothing running"))
    return 0


def _cmd_reap(args: argparse.Namespace) -> int:
    reaped = reap_stale_projects(docker_client())
    for project in reaped:
        print(f"reaped compose project {project} (its owner is gone)")
    return 1 if reaped else 0


def main(argv: list[str] | None = None) -> int:
    """Command line of the compose backend: images, up, down, status."""
    parser = argparse.ArgumentParser(prog="python -m harness.env.compose", description=main.__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("images", help="build the local FROM-scratch nats and toxiproxy images")
    p.add_argument("--env", action="store_true", help="print `export NATS_IMAGE=... TOXIPROXY_IMAGE=...` lines")
    p.set_defaults(fn=_cmd_images)
    p = sub.add_parser("reap", help="remove the stacks of harness runs that died; exit 1 if there were any")
    p.set_defaults(fn=_cmd_reap)
    for name, fn, text in (
        ("up", _cmd_up, "bring a stack up and leave it running"),
        ("down", _cmd_down, "take a stack down (containers, network, volume)"),
        ("status", _cmd_status, "say whether the Docker API answers and what the project runs"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--project", default="nats-chaos", help="compose project name (default: nats-chaos)")
        p.set_defaults(fn=fn)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except EnvError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
