"""The reference scenarios give the same verdicts on the local and the compose backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.env.compose import ComposeEnvironment
from harness.env.local import LocalEnvironment
from harness.runner import Runner
from harness.scenario import load_paths

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.compose


def _verdicts(env_cls, **kw) -> dict[str, tuple[str, tuple[str, ...]]]:
    out = {}
    with env_cls(**kw) as env:
        runner = Runner(env, run_seed=99)
        try:
            for sc in load_paths([ROOT / "scenarios" / "reference.yaml"]):  # the reference set, not the whole suite
                rec = runner.run(sc)
                out[sc.id] = (rec.verdict, tuple(sorted({f.check for f in rec.findings})))
        finally:
            runner.close()
    return out


def test_reference_verdicts_match_between_local_and_compose() -> None:
    # The two backends' runs at once (each its own environment, runner and agents: two
    # scenarios in flight, as `-n 2` has): one after the other they took ~417 s, mostly waiting.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        local_run = pool.submit(_verdicts, LocalEnvironment)
        compose_run = pool.submit(_verdicts, ComposeEnvironment, ready_timeout=30)
        local, compose = local_run.result(), compose_run.result()
    assert set(local) == set(compose)
    differ = {k: (local[k], compose[k]) for k in local if local[k] != compose[k]}
    assert not differ, "verdict (checks) local vs compose:\n" + "\n".join(f"  {k}: {a} vs {b}" for k, (a, b) in differ.items())
    assert all(v[0] in ("passed", "failed") for v in local.values()), local


def _our_containers() -> set[str]:
    from harness.env.compose import PROJECT_LABEL, PROJECT_PREFIX, docker_client

    client = docker_client()
    try:
        return {c.id for c in client.containers.list(all=True) if c.labels.get(PROJECT_LABEL, "").startswith(PROJECT_PREFIX)}
    finally:
        client.close()


def test_harness_run_env_compose_as_a_user_runs_it(tmp_path: Path) -> None:
    # The path users take: `harness run --env compose`: the exit status says findings, the
    # journal says compose, and the run's own stack is gone afterwards.
    import json
    import subprocess
    import sys

    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text("matrix:\n  - name: s\n    flows: [selftest.leak_task, selftest.clean_task]\n")
    before = _our_containers()
    r = subprocess.run([str(Path(sys.executable).with_name("harness")), "run", "--env", "compose", "--seed", "5"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    journal = json.loads((tmp_path / "reports/latest/journal.json").read_text())
    assert journal["header"]["backend"] == "compose"
    verdicts = {rec["flow"]: rec["verdict"] for rec in journal["records"]}
    assert verdicts == {"selftest.leak_task": "failed", "selftest.clean_task": "passed"}
    assert _our_containers() <= before, "the run left containers of its compose project"


def test_a_server_target_runs_in_the_compose_stack(tmp_path: Path) -> None:
    # `--server 2.10.26 --env compose`: that release's binary goes into a local image (built
    # if missing), and the stack really runs it — never the official image of another version.
    import json
    import subprocess
    import sys

    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text("matrix:\n  - name: s\n    flows: [selftest.clean_task]\n")
    import os

    env = {k: v for k, v in os.environ.items() if k != "NATS_IMAGE"}  # `make test-compose` pins the default's image
    r = subprocess.run([str(Path(sys.executable).with_name("harness")), "run", "--env", "compose", "--server", "2.10.26",
                        "--seed", "5"], cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    header = json.loads((tmp_path / "reports/latest/journal.json").read_text())["header"]
    assert header["backend"] == "compose"
    assert header["nats_server"].lstrip("v") == "2.10.26"
    assert header["target"]["server"]["version"] == "2.10.26"
    # An image override that runs another release is refused, not silently used.
    env["NATS_IMAGE"] = os.environ.get("NATS_IMAGE") or "localhost/nats-chaos/nats:2.12.8"
    if env["NATS_IMAGE"].endswith(":2.10.26"):
        return
    r = subprocess.run([str(Path(sys.executable).with_name("harness")), "run", "--env", "compose", "--server", "2.10.26",
                        "--seed", "5"], cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-3000:]
    assert "but the target is nats-server 2.10.26" in r.stdout
