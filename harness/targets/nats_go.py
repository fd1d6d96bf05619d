"""nats.go as a client under test: the Go agent (harness/agent/go/) built against one release.

The agent's sources are copied into the target cache, pinned to the release with
`go get github.com/nats-io/nats.go@VERSION` (not `go mod tidy`: tidy also resolves
nats.go's *test* imports, and nats-server's requirement would lift nats.go to the newest
release) and built with `go build`. One binary per release (or checkout), built once and
reused while the agent's sources and the Go toolchain are the same (the fingerprint).

Flows a release lacks compile out: releases before JETSTREAM_SINCE are built with the
`nojetstream` tag, before CONSUME_CLOSED_SINCE with `noconsumeclosed`, and the agent
reports those flows not applicable in its hello.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.targets import (
    AgentCommand,
    ClientTarget,
    TargetError,
    atomic_install,
    git_commit,
    nearest_versions,
    path_fingerprint,
    slug,
)

MODULE = "github.com/nats-io/nats.go"
IMPL = "nats.go"
DEFAULT_VERSION = "v1.55.0"  # harness/agent/go/go.mod pins the same (a build by hand uses it)
# The `jetstream` package has what the agent's flows use (ObjectStore, KeyValue,
# Consumer.Messages with Drain) from this release; older ones build with -tags nojetstream.
JETSTREAM_SINCE = "v1.32.0"
# ConsumeContext.Closed(), which next.consume waits on; older ones build with -tags noconsumeclosed.
CONSUME_CLOSED_SINCE = "v1.37.0"
# The pull iterator's Next(NextContext(ctx)), which continue.iterate cancels; older ones build with -tags nonextcontext.
NEXT_CONTEXT_SINCE = "v1.46.0"
# The legacy JetStream API the other flows use (nats.Bind, DirectGet, NakWithDelay, ...).
OLDEST_SUPPORTED = "v1.22.1"
AGENT_SRC = Path(__file__).resolve().parents[1] / "agent" / "go"
GO_TIMEOUT = 300  # a first build downloads the release's modules; later ones take seconds
MIN_GO = "1.21"  # the agent's own code; a release may need a newer Go (its go.mod says which)
INSTALL_HINT = f"install the Go toolchain (≥ {MIN_GO}; e.g. `apt-get install golang-go`) and put `go` on PATH"


def version_key(v: str) -> tuple:
    """v1.41.0 < v1.41.1 < v1.42.0-rc.1? Pre-releases sort before their release."""
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)(?:-(.+))?$", v.strip())
    if not m:
        return (-1, v)
    major, minor, patch, pre = m.groups()
    return (int(major), int(minor), int(patch), (0, pre) if pre else (1, ""))


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise TargetError("nats.go targets need the Go toolchain: `go` was not found on PATH", hint=INSTALL_HINT)
    return go


def _go_env() -> dict[str, str]:
    # Never fetch another toolchain, never pick up a go.work around the cache, static binary.
    return {**os.environ, "GOTOOLCHAIN": "local", "GOWORK": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}


def _run_go(args: list[str], cwd: Path, what: str, timeout: float = GO_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([_go(), *args], cwd=cwd, env=_go_env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{what} timed out after {timeout:.0f}s", hint="check access to the Go module proxy") from None


def _go_version() -> str:
    r = _run_go(["version"], Path.cwd(), "go version", timeout=30)
    return r.stdout.strip()


def source_hash() -> str:
    """What identifies the agent's sources: a change rebuilds every cached agent."""
    h = hashlib.sha256()
    for p in sorted(AGENT_SRC.iterdir()):
        if p.suffix == ".go" or p.name in ("go.mod", "go.sum"):
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_tags(version: str) -> list[str]:
    """The build tags for a release: what compiles out of the agent (documented above)."""
    tags = []
    if version_key(version) < version_key(JETSTREAM_SINCE):
        tags.append("nojetstream")
    if version_key(version) < version_key(CONSUME_CLOSED_SINCE):
        tags.append("noconsumeclosed")
    if version_key(version) < version_key(NEXT_CONTEXT_SINCE):
        tags.append("nonextcontext")
    return tags


class NatsGo:
    name = IMPL
    default_version = DEFAULT_VERSION
    version_syntax = "semver"

    def version_key(self, version: str) -> tuple:
        return version_key(version)

    # -- the registry -------------------------------------------------------------------
    def published_versions(self) -> list[str]:
        """nats.go's releases, oldest first (`go list -m -versions`). The list the module proxy
        gives omits a few releases that still resolve (v1.40.x, v1.41.0): `exists` asks for one."""
        with tempfile.TemporaryDirectory() as d:
            r = _run_go(["list", "-m", "-versions", MODULE], Path(d), f"`go list -m -versions {MODULE}`", timeout=60)
        if r.returncode != 0:
            last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise TargetError(f"`go list -m -versions {MODULE}` failed: {last[0][:200]}",
                              evidence=r.stderr[-1500:], hint="check access to the Go module proxy (GOPROXY)")
        return sorted(r.stdout.split()[1:], key=version_key)

    def exists(self, version: str) -> bool:
        with tempfile.TemporaryDirectory() as d:
            r = _run_go(["list", "-m", "-json", f"{MODULE}@{version}"], Path(d), f"`go list -m {MODULE}@{version}`", timeout=60)
        return r.returncode == 0

    # -- build ---------------------------------------------------------------------------
    def ensure(self, target: ClientTarget, cache: Path) -> tuple[ClientTarget, AgentCommand]:
        if target.source == "release":
            version = target.version if target.version.startswith("v") else f"v{target.version}"
            cached = _cached_without_go(cache / f"{IMPL}-{slug(version)}", f"{MODULE}@{version}")
            if cached is not None:
                return ClientTarget(IMPL, version, "release"), cached
        go_version = _go_version()
        if target.source == "path":
            return self._ensure_path(target, cache, go_version)
        target = ClientTarget(IMPL, version, "release")
        dest = cache / f"{IMPL}-{slug(version)}"
        fingerprint = f"{MODULE}@{version} agent={source_hash()} {go_version}"
        stamp = dest / ".complete"
        if not (stamp.is_file() and stamp.read_text() == fingerprint):
            if not re.match(r"^v\d+\.\d+\.\d+(-[\w.]+)?$", version) or not self.exists(version):
                published = self.published_versions()
                near = nearest_versions(version, published, version_key)
                raise TargetError(f"nats.go {version} is not a published release (nearest: {', '.join(near)})",
                                  hint=f"published: {published[0]} … {published[-1]}; or test a checkout with --client nats.go@PATH")
            if version_key(version) < version_key(OLDEST_SUPPORTED):
                raise TargetError(f"nats.go {version} is older than the oldest release the Go agent builds against ({OLDEST_SUPPORTED})",
                                  hint=f"pick {OLDEST_SUPPORTED} or later")
        atomic_install(dest, lambda tmp: _build(tmp, f"{MODULE}@{version}", None, build_tags(version), version), fingerprint)
        return target, AgentCommand(argv=(str(dest / "agent"),), env={})

    def _ensure_path(self, target: ClientTarget, cache: Path, go_version: str) -> tuple[ClientTarget, AgentCommand]:
        p = Path(target.path)
        mod = p / "go.mod"
        if not mod.is_file() or f"module {MODULE}" not in mod.read_text():
            raise TargetError(f"{p} is not a nats.go checkout (no go.mod declaring module {MODULE})",
                              hint="pass the checkout's root folder")
        dest = cache / f"{IMPL}-path-{slug(p.name)}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"
        version = checkout_version(p)
        fingerprint = f"{_checkout_fingerprint(p)} version={version} agent={source_hash()} {go_version}"
        tags = build_tags(version) if version else []
        atomic_install(dest, lambda tmp: _build(tmp, None, p, tags, "path", version), fingerprint)
        return (ClientTarget(IMPL, version, "path", path=str(p), commit=git_commit(str(p))),
                AgentCommand(argv=(str(dest / "agent"),), env={}))


def _git(p: Path, *args: str) -> str:
    try:
        r = subprocess.run(["git", "-C", str(p), *args], capture_output=True, text=True, timeout=10,
                           env={**os.environ, "TZ": "UTC"}, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def pseudo_version(base_tag: str, commit_time: str, commit: str) -> str:
    """Go's pseudo-version for a commit after `base_tag` (go help modules: "Pseudo-versions"):
    v1.55.0 -> v1.55.1-0.TIME-HASH; v1.56.0-rc.1 -> v1.56.0-rc.1.0.TIME-HASH; no tag -> v0.0.0-TIME-HASH."""
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)(-[\w.]+)?$", base_tag or "")
    if not m:
        return f"v0.0.0-{commit_time}-{commit[:12]}"
    major, minor, patch, pre = m.groups()
    if pre:
        return f"{base_tag}.0.{commit_time}-{commit[:12]}"
    return f"v{major}.{minor}.{int(patch) + 1}-0.{commit_time}-{commit[:12]}"


def checkout_version(p: Path) -> str:
    """What `go` would call the checkout's HEAD: its tag (v1.55.0), or the pseudo-version of the
    commit after the nearest tag (v1.55.1-0.20261204120000-3f2a1bc4d5e6); "" if not a git checkout.
    Uncommitted changes are not in it (the target's commit and the cache fingerprint say dirty)."""
    commit = _git(p, "rev-parse", "HEAD")
    if not commit:
        return ""
    exact = _git(p, "describe", "--tags", "--exact-match", "--match", "v*", "HEAD")
    if exact:
        return exact.splitlines()[0]
    base = _git(p, "describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD")
    when = _git(p, "log", "-1", "--format=%cd", "--date=format-local:%Y%m%d%H%M%S", "HEAD")
    return pseudo_version(base, when, commit)


def _cached_without_go(dest: Path, what: str) -> AgentCommand | None:
    """A release's agent built earlier from today's agent sources, when `go` is not on PATH: the
    binary is static (CGO_ENABLED=0) and needs no toolchain to run. With `go` on PATH the
    fingerprint (which names the toolchain) decides instead, so a new toolchain rebuilds."""
    if shutil.which("go") is not None:
        return None
    stamp = dest / ".complete"
    if stamp.is_file() and stamp.read_text().startswith(f"{what} agent={source_hash()} ") and (dest / "agent").is_file():
        return AgentCommand(argv=(str(dest / "agent"),), env={})
    return None


def _checkout_fingerprint(p: Path) -> str:
    """A git checkout's commit and dirty state; otherwise the newest .go file's mtime."""
    if git_commit(str(p)):
        return path_fingerprint(str(p))
    return f"tree:{max((f.stat().st_mtime_ns for f in p.rglob('*.go')), default=0)}"


def _build(dest: Path, require: str | None, replace: Path | None, tags: list[str], label: str, version: str = "") -> None:
    """Copy the agent's sources to `dest/src`, pin nats.go, build `dest/agent`."""
    src = dest / "src"
    src.mkdir(parents=True)
    for p in AGENT_SRC.iterdir():
        if p.suffix == ".go":
            shutil.copy2(p, src / p.name)
    # A fresh go.mod (not the committed one, pinned to the default release): `go get` then
    # raises the `go` line only as far as the chosen release needs (v1.32.0: 1.21; v1.55.0: 1.26).
    (src / "go.mod").write_text(f"module natschaos/agent\n\ngo {MIN_GO}\n")
    steps: list[tuple[list[str], str]] = []
    if replace is not None:
        steps.append((["mod", "edit", f"-require={MODULE}@v0.0.0", f"-replace={MODULE}={replace}"],
                      "pinning nats.go to the checkout"))  # -mod=mod: go build adds its requirements
    else:
        steps.append((["get", require or MODULE], f"fetching {require}"))
    # A checkout's version is not in the binary's build info (a directory replace has none): stamped in.
    ldflags = ["-ldflags", f"-X main.checkoutVersion={version}"] if replace is not None and version else []
    steps.append((["build", "-trimpath", *(["-tags", ",".join(tags)] if tags else []), *ldflags, "-o", str(dest / "agent"), "."],
                  f"building the Go agent against nats.go {label}"))
    for args, what in steps:
        r = _run_go(args, src, what)
        if r.returncode != 0:
            lines = (r.stderr or r.stdout).strip().splitlines()
            raise TargetError(f"{what} failed: {lines[-1] if lines else 'exit ' + str(r.returncode)}",
                              evidence="\n".join(lines[-20:]),
                              hint="the compiler's last lines are above; a release may lack an API a flow uses "
                                   "(see JETSTREAM_SINCE in harness/targets/nats_go.py)")
