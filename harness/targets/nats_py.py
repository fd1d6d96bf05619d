"""nats-py as a client under test: one virtualenv per release or source, the Python agent in it.

The target's virtualenv holds nothing but the client under test (nats-py has no required
dependencies). The agent runs with that interpreter, `-P` (no script or working directory
on sys.path) and a PYTHONPATH holding only a link to the harness package, so it imports the
standard library, the harness's agent and flow code, and the target's nats-py — never the
harness's own nats-py (a test proves it).

`uv` (a dev dependency, from PyPI) makes a virtualenv and installs in about a second; without
it the stdlib `venv` and pip are used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import harness
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

PACKAGE = "nats-py"
DEFAULT_VERSION = "2.16.0"  # the harness's own pinned nats-py (pyproject.toml) is the default target
OLDEST_SUPPORTED = "2.0.0"
INSTALL_TIMEOUT = 300


def _version_key(v: str) -> tuple:
    parts = re.findall(r"\d+|[A-Za-z]+", v)
    return tuple((0, int(p)) if p.isdigit() else (-1, p) for p in parts)


class NatsPy:
    name = PACKAGE
    default_version = DEFAULT_VERSION
    version_syntax = "pep440"

    def version_key(self, version: str) -> tuple:
        return _version_key(version)

    # -- the registry -------------------------------------------------------------------
    def published_versions(self) -> list[str]:
        """Every nats-py release on the package index, oldest first (`pip index versions`)."""
        try:
            r = subprocess.run(
                [sys.executable, "-m", "pip", "index", "versions", PACKAGE, "--disable-pip-version-check",
                 "--retries", "1", "--timeout", "15"],
                capture_output=True, text=True, timeout=60,
            )
        except subprocess.TimeoutExpired:
            raise TargetError("no package registry reachable: `pip index versions nats-py` timed out after 60s",
                              hint="check network access to PyPI (or its mirror in pip's configuration)") from None
        m = re.search(r"Available versions:\s*(.+)", r.stdout)
        if r.returncode != 0 or not m:
            raise TargetError(
                f"no package registry reachable: `pip index versions {PACKAGE}` {registry_failure(r.stderr or r.stdout)}",
                evidence="\n".join((r.stderr or r.stdout).strip().splitlines()[-3:]),
                hint="check network access to PyPI (or its mirror in pip's configuration)",
            )
        versions = [v.strip() for v in m.group(1).split(",") if v.strip()]
        return sorted(versions, key=_version_key)

    # -- install -----------------------------------------------------------------------
    def ensure(self, target: ClientTarget, cache: Path) -> tuple[ClientTarget, AgentCommand]:
        if target.source == "path":
            return self._ensure_path(target, cache)
        dest = cache / f"{PACKAGE}-{slug(target.version)}"
        fingerprint = f"{PACKAGE}=={target.version} python={sys.version_info[0]}.{sys.version_info[1]}"
        stamp = dest / ".complete"
        if not (stamp.is_file() and stamp.read_text() == fingerprint):
            published = self.published_versions()
            if target.version not in published:
                near = nearest_versions(target.version, published, _version_key)
                raise TargetError(
                    f"nats-py {target.version} is not a published release (nearest: {', '.join(near)})",
                    hint=f"published: {published[0]} … {published[-1]}; or test a checkout with --client nats-py@PATH",
                )
        atomic_install(dest, lambda tmp: _make_env(tmp, f"{PACKAGE}=={target.version}"), fingerprint)
        return target, self._command(dest)

    def _ensure_path(self, target: ClientTarget, cache: Path) -> tuple[ClientTarget, AgentCommand]:
        p = Path(target.path)
        if p.is_file():
            if p.suffix != ".whl":
                raise TargetError(f"{p} is not a wheel (.whl) or a source checkout", hint="pass a nats.py checkout or a built wheel")
        elif p.is_dir():
            if not ((p / "pyproject.toml").is_file() or (p / "setup.py").is_file()):
                raise TargetError(f"{p} is not a nats.py source checkout (no pyproject.toml or setup.py)",
                                  hint="pass the checkout's root folder, or a built wheel")
        else:
            raise TargetError(f"{p} does not exist", hint="pass a nats.py checkout or a built wheel")
        dest = cache / f"{PACKAGE}-path-{slug(p.name)}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"
        atomic_install(dest, lambda tmp: _make_env(tmp, str(p)), path_fingerprint(str(p)))
        meta = json.loads((dest / "target.json").read_text())
        if meta.get("name") not in ("nats-py", "nats_py"):
            shutil.rmtree(dest, ignore_errors=True)
            raise TargetError(f"{p} installs {meta.get('name') or 'nothing'}, not nats-py", hint="pass a nats.py checkout or wheel")
        resolved = ClientTarget(PACKAGE, meta.get("version", ""), "path", path=str(p), commit=git_commit(str(p)) if p.is_dir() else "")
        return resolved, self._command(dest)

    def _command(self, env_dir: Path) -> AgentCommand:
        return AgentCommand(
            argv=(str(env_dir / "bin" / "python"), "-P", "-m", "harness.agent"),
            env={"PYTHONPATH": str(agent_path(env_dir.parent)), "PYTHONNOUSERSITE": "1"},
        )


def registry_failure(text: str) -> str:
    """pip's many-line failure, as a few words: why the registry did not answer."""
    for needle, words in (("Connection refused", "was refused a connection"), ("Name or service not known", "could not resolve the host"),
                          ("Temporary failure in name resolution", "could not resolve the host"), ("timed out", "timed out"),
                          ("No matching distribution", "found no such package")):
        if needle in text:
            return words
    last = text.strip().splitlines()[-1:] or ["no output"]
    return f"failed: {last[0][:160]}"


def agent_path(cache: Path) -> Path:
    """A folder whose only entry is a link to the harness package: the agent's PYTHONPATH.

    (The harness's site-packages would bring its own nats-py along; this brings nothing else.)
    """
    d = cache / "agent-path"
    link = d / "harness"
    pkg = Path(harness.__file__).resolve().parent
    if not (link.is_symlink() and Path(os.readlink(link)) == pkg):
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".harness-{os.getpid()}-{threading.get_ident()}"  # then one atomic replace
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(pkg, target_is_directory=True)
        tmp.replace(link)
    return d


def _uv() -> str | None:
    cand = Path(sys.executable).parent / "uv"
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    return shutil.which("uv")


def _make_env(dest: Path, requirement: str) -> None:
    """A virtualenv at `dest` with only `requirement` installed; target.json says what it got."""
    uv = _uv()
    base_python = getattr(sys, "_base_executable", sys.executable)
    if uv:
        _run([uv, "venv", "--quiet", "--python", base_python, str(dest)], "creating the target's virtualenv")
        _run([uv, "pip", "install", "--quiet", "--python", str(dest / "bin" / "python"), requirement], f"installing {requirement}")
    else:
        _run([base_python, "-m", "venv", str(dest)], "creating the target's virtualenv")
        _run([str(dest / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement],
             f"installing {requirement}")
    probe = (
        "import json, importlib.metadata as m\n"
        "d = [x for x in m.distributions() if (x.metadata['Name'] or '').lower().replace('_', '-') == 'nats-py']\n"
        "print(json.dumps({'name': 'nats-py' if d else '', 'version': d[0].version if d else ''}))"
    )
    out = _run([str(dest / "bin" / "python"), "-c", probe], "reading the installed version")
    (dest / "target.json").write_text(out.strip().splitlines()[-1])


def _run(argv: list[str], what: str) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{what} timed out after {INSTALL_TIMEOUT}s", hint="check network access to PyPI") from None
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()
        raise TargetError(f"{what} failed: {tail[-1] if tail else 'exit ' + str(r.returncode)}",
                          evidence="\n".join(tail[-20:]), hint="check network access to PyPI, and the version or path given")
    return r.stdout
