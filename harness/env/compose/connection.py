"""The Docker API and the Compose CLI the compose backend talks to.

The API is the `docker` SDK at `docker_host()` ($DOCKER_HOST, else Docker's socket, else this
project's podman service), so a podman service works too; the Compose CLI is `docker compose`
(v2), else `docker-compose` (v1), else $NATS_CHAOS_COMPOSE.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from harness.env.process import PROJECT_ROOT
from harness.errors import EnvError, MissingBinaryError

API_TIMEOUT = 30

DOCKER_HINT = (
    "start Docker, or point DOCKER_HOST at a Docker-compatible API"
    " (here: `eval \"$(scripts/podman-service.sh start)\"`, see compose/README.md)"
)

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
        raise EnvError(f"no Docker API at {host}: {first_line(e)}", hint=DOCKER_HINT) from None
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


def first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


