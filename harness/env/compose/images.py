"""The local FROM-scratch images of the compose stack (`harness env images`, `make compose-images`).

The nats image carries the nats-server `make setup` installed (or the --server target's),
the toxiproxy image a toxiproxy-server rebuilt without libc; both hold the static
healthcheck of compose/healthcheck. Built through the Docker API, so podman works too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

from harness.env.compose.connection import docker_client, first_line
from harness.env.process import PROJECT_ROOT, find_binary
from harness.errors import EnvError, MissingBinaryError

COMPOSE_DIR = PROJECT_ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
BUILD_DIR = COMPOSE_DIR / ".build"
HEALTHCHECK_BIN = BUILD_DIR / "bin" / "healthcheck"
STATIC_TOXIPROXY_BIN = BUILD_DIR / "bin" / "toxiproxy-server"

DEFAULT_NATS_IMAGE = "nats:2.12"
DEFAULT_TOXIPROXY_IMAGE = "ghcr.io/shopify/toxiproxy:2.12.0"
LOCAL_IMAGE_REPO = "localhost/nats-chaos"
TOXIPROXY_VERSION = "v2.12.0"

IMAGES_HINT = "run `make compose-images` (builds the binaries and local images; needs Go)"


def build_healthcheck() -> Path:
    """Build compose/healthcheck into compose/.build/bin/healthcheck (static) if it is missing."""
    if HEALTHCHECK_BIN.is_file():
        return HEALTHCHECK_BIN
    with build_lock():
        if HEALTHCHECK_BIN.is_file():
            return HEALTHCHECK_BIN  # built by another run while we waited
        # `docker compose up` run by hand before the build makes the missing bind source a directory.
        if HEALTHCHECK_BIN.is_dir():
            shutil.rmtree(HEALTHCHECK_BIN)
        tmp = HEALTHCHECK_BIN.with_name(f".healthcheck.{os.getpid()}")
        _go_build(["build", "-trimpath", "-ldflags=-s -w", "-o", str(tmp), "."], COMPOSE_DIR / "healthcheck")
        os.replace(tmp, HEALTHCHECK_BIN)  # whole or not at all, for a run that checks is_file()
    return HEALTHCHECK_BIN


def build_static_toxiproxy() -> Path:
    """toxiproxy-server without libc (CGO_ENABLED=0): it must run in a FROM-scratch image."""
    if STATIC_TOXIPROXY_BIN.is_file():
        return STATIC_TOXIPROXY_BIN
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with build_lock(), tempfile.TemporaryDirectory(dir=BUILD_DIR) as gobin:
        if STATIC_TOXIPROXY_BIN.is_file():
            return STATIC_TOXIPROXY_BIN  # built by another run while we waited
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


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """Builds of the helper binaries and local images take turns across processes (xdist
    workers, parallel runs): an flock on compose/.build/.lock, dropped when its holder dies."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(BUILD_DIR / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a build is bounded (go: 600 s, the engine's own timeout)
        yield
    finally:
        os.close(fd)


def build_images(client: Any | None = None, *, only_missing: bool = False) -> dict[str, str]:
    """Build the local nats and toxiproxy images (FROM scratch) through the Docker API.

    Contexts are assembled in a private folder under compose/.build/ from the Dockerfiles in
    compose/images/ and the static binaries. Returns {"NATS_IMAGE": tag, "TOXIPROXY_IMAGE": tag}.
    With `only_missing`, an image the engine has (another run built it meanwhile) is kept.
    """
    client = client or docker_client(timeout=300)
    build_healthcheck()
    tags = local_image_tags()
    binaries = {
        "nats": (find_binary("NATS_SERVER_BIN", ["nats-server"], "run `make setup`"), "nats-server"),
        "toxiproxy": (str(build_static_toxiproxy()), "toxiproxy-server"),
    }
    with build_lock():
        for name, env_key in (("nats", "NATS_IMAGE"), ("toxiproxy", "TOXIPROXY_IMAGE")):
            if only_missing and _has_image(client, tags[env_key]):
                continue
            with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix=f"{name}-") as d:
                ctx = Path(d)
                src, dest = binaries[name]
                shutil.copy2(src, ctx / dest)
                shutil.copy2(COMPOSE_DIR / "images" / name / "Dockerfile", ctx / "Dockerfile")
                try:
                    client.images.build(path=str(ctx), tag=tags[env_key], rm=True, pull=False)
                except Exception as e:
                    raise EnvError(f"building image {tags[env_key]} failed: {first_line(e)}", hint=f"context: {ctx}") from None
    return tags


def _has_image(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except Exception:
        return False
