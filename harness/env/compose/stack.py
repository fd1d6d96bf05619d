"""`ComposeEnvironment`: nats-server and Toxiproxy as the containers of a per-run Compose project.

The stack is `compose/docker-compose.yml`, brought up and down by the Compose CLI
(connection.compose_command()). Everything else goes through the Docker API
(connection.docker_client()): the containers are found by their compose labels and only
ever those of this run's project; server faults are container operations (pause, kill,
stop + start, SIGUSR2); container logs are the evidence in errors. Each run gets its own
project name, free loopback ports and credentials; the credentials reach nats-server
through the environment of `compose up` and are scrubbed from every message.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from harness.env.base import PROXY_NAME, Environment
from harness.env.compose.connection import DOCKER_HINT, compose_command, docker_client, docker_host, first_line
from harness.env.compose.images import (
    COMPOSE_FILE,
    DEFAULT_NATS_IMAGE,
    DEFAULT_TOXIPROXY_IMAGE,
    HEALTHCHECK_BIN,
    IMAGES_HINT,
    build_healthcheck,
    build_images,
    local_image_tags,
)
from harness.env.compose.reap import (
    PROJECT_LABEL,
    PROJECT_PREFIX,
    SERVICE_LABEL,
    owner_mark,
    reap_stale_projects,
    remove_project,
)
from harness.env.local import PORT_ATTEMPTS, nats_handshake
from harness.env.process import chosen_port_lost, http_ok
from harness.errors import EnvError, MissingBinaryError, StartupError

UP_TIMEOUT = 300.0  # `compose up` may pull images on a first run
DOWN_TIMEOUT = 60.0
READY_TIMEOUT = 30.0
# Log lines quoted in errors: toxiproxy logs one long JSON line per connection; a nats
# service (`nats`, or a cluster's `n1`..`n3`) gets the default.
EVIDENCE_LINES = {"toxiproxy": 12}
NATS_EVIDENCE_LINES = 40


def evidence_lines(service: str) -> int:
    return EVIDENCE_LINES.get(service, NATS_EVIDENCE_LINES)


class ComposeEnvironment(Environment):
    """nats-server + Toxiproxy as the containers of one Compose project, on loopback ports."""

    backend = "compose"
    # The compose services, nats-servers first (quoted in errors, in this order).
    services: tuple[str, ...] = ("nats", "toxiproxy")

    def __init__(
        self,
        *,
        project: str | None = None,
        nats_image: str | None = None,
        toxiproxy_image: str | None = None,
        ready_timeout: float = READY_TIMEOUT,
        up_timeout: float = UP_TIMEOUT,
        compose_file: Path = COMPOSE_FILE,
        owner: str | None = None,
        **ports_and_topology: Any,
    ) -> None:
        """Ports (nats_port, monitor_port, api_port, proxy_port) and topology: see Environment."""
        super().__init__(ready_timeout=ready_timeout, **ports_and_topology)
        self.project = project or f"{PROJECT_PREFIX}{secrets.token_hex(4)}"
        # Resolved in start(): argument > $NATS_IMAGE > local image if built > official image.
        self.nats_image = nats_image or os.environ.get("NATS_IMAGE") or ""
        self.toxiproxy_image = toxiproxy_image or os.environ.get("TOXIPROXY_IMAGE") or ""
        self.up_timeout = up_timeout
        self.compose_file = compose_file
        # "manual" stacks (the Compose CLI by hand) are never reaped; a run's stack dies with its owner.
        self.owner = owner or owner_mark()
        self._client: Any = None
        self._compose: list[str] | None = None
        self._up_called = False
        self.port_retries: list[str] = []  # evidence: each chosen port lost to another program

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
        self._check_asked_ports()  # before any Docker call: a usage error is told first
        self._client = docker_client()
        reap_stale_projects(self._client)
        if not HEALTHCHECK_BIN.is_file():
            build_healthcheck()
        self._compose = compose_command()
        self._resolve_images()
        # A port chosen free can be taken by another program before the engine publishes it:
        # `up` fails, the stack is taken down and brought up on freshly chosen ports (evidence
        # kept in port_retries). A port asked for is never changed.
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self._ports = self._claim_ports()
            self._up_called = True  # from here on stop() has something to take down
            try:
                self._run_compose(["up", "-d", "--no-build"], self.up_timeout, "bring the stack up")
                break
            except StartupError as e:
                role = chosen_port_lost(f"{e.summary}\n{e.evidence}", self._ports, self._want)
                if role is None or attempt == PORT_ATTEMPTS:
                    if self.port_retries:
                        e.evidence = "\n".join([*self.port_retries, e.evidence])
                    raise
                self.port_retries.append(
                    f"up attempt {attempt}: 127.0.0.1:{self._ports[role]} (chosen for {role}) was taken "
                    f"before the engine published it; ports chosen again"
                )
                self._run_compose(["down", "-v", "--remove-orphans", "-t", "5"], DOWN_TIMEOUT, "take the stack down")
        self._await_ready()

    def _await_ready(self) -> None:
        """Return once the stack is ready (evidence from the host: health, API, a handshake through the proxy)."""
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
        self._api("restart nats", restart_container)
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
                    build_images(self._client, only_missing=True)
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
            **self._port_variables(),
        }

    def _port_variables(self) -> dict[str, str]:
        """The compose file's port variables (0 before the ports are chosen)."""
        return {
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
            for svc in self.services:
                with contextlib.suppress(EnvError):
                    evidence += f"\n--- last lines of {svc}:\n{self._logs(svc, evidence_lines(svc))}"
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
            raise EnvError(f"Docker API call failed listing {service}: {first_line(e)}", hint=DOCKER_HINT) from None
        if not found:
            raise EnvError(
                f"no {service} container in compose project {self.project}",
                hint=f"`docker ps -a --filter label={PROJECT_LABEL}={self.project}`",
            )
        return found[0]

    def _api(self, what: str, op: Callable[[Any], None], service: str = "nats") -> None:
        c = self._container(service)
        try:
            op(c)
        except Exception as e:
            raise EnvError(
                f"could not {what} ({c.name}): {first_line(e)}",
                evidence=f"--- last lines of {service}:\n{self._logs(service, 20)}",
                hint="the container may already be stopped; `server_running()` tells",
            ) from None

    def _logs(self, service: str, lines: int) -> str:
        c = self._container(service)
        try:
            text = c.logs(tail=lines).decode(errors="replace")
        except Exception as e:
            text = f"(no logs: {first_line(e)})"
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
                        evidence=f"--- last lines of {name}:\n{self._logs(name, evidence_lines(name))}",
                        hint=_log_hint(self._logs(name, 200)),
                    )
            if time.monotonic() > deadline:
                c = self._container(service)
                c.reload()
                raise StartupError(
                    f"{service} not ready after {self.ready_timeout:.1f}s: no {what}",
                    evidence=f"container {c.name}: {c.status}\n"
                    f"--- last lines of {service}:\n{self._logs(service, evidence_lines(service))}",
                    hint=_log_hint(self._logs(service, 200)),
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def restart_container(c: Any) -> None:
    """Stop a container (5 s grace; unpaused first: a frozen one cannot stop) and start it again:
    same published ports, same volume."""
    c.reload()
    if c.status == "paused":
        c.unpause()
    if c.status in ("running", "paused"):
        c.stop(timeout=5)
    c.start()


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
