"""Every nats.go release from the oldest the Go agent builds against (v1.22.1: the legacy
JetStream API) to the newest is a valid target: each built-in flow's no-fault control, on the
release's default API and on each of nats.go's two JetStream APIs where the flow has both,
passes, or is `not_applicable` (the release lacks the API: the `jetstream` package before
v1.32.0, `ConsumeContext.Closed()` before v1.37.0, ...), or fails only with a finding a known
issue explains for that release — never `error`, never `inconclusive`, never unexplained.

Exhaustive (31 releases × 50 controls; each release's agent is built once into the target
cache): `make test-releases` and the nightly job run it; `make test` does not (marker
`releases`). NATS_CHAOS_GO_RELEASES=v1.32.0,v1.55.0 runs only those (a bounded run by hand; two
at least: it is a `harness matrix`).
The seed releases of KI-014/KI-015 are tested in make test (tests/engine/test_go_agent.py),
and `harness bisect` on nats.go below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.flows import FLOWS, load_flow_modules
from harness.gate import decide_scenario
from harness.known_issues import load_known_issues, target_of
from harness.targets import implementation
from harness.targets.nats_go import OLDEST_SUPPORTED, version_key

PROJECT = Path(__file__).resolve().parents[2]
needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="the Go toolchain (go) is not on PATH")


def _harness(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ})


def go_controls_file(path: Path) -> Path:
    """The no-fault control of every built-in flow but the soaks and self-tests; a flow nats.go
    has on both JetStream APIs (an `api` param) also once per API (`~legacy`, `~jetstream`)."""
    load_flow_modules()
    flows = sorted(n for n, s in FLOWS.items() if s.module.startswith("harness.flows") and not n.startswith(("selftest.", "soak.")))
    entries = [f"  - name: c{i}\n    flows: [{f}]\n    faults: [none]\n" for i, f in enumerate(flows)]
    for i, f in enumerate(n for n in flows if "api" in FLOWS[n].defaults):
        for api in ("legacy", "jetstream"):
            entries.append(f"  - name: a{i}{api}\n    variant: {api}\n    flows: [{f}]\n    faults: [none]\n    params: {{api: {api}}}\n")
    path.write_text("matrix:\n" + "".join(entries))
    return path


def releases() -> list[str]:
    chosen = os.environ.get("NATS_CHAOS_GO_RELEASES")
    if chosen:
        return [v.strip() for v in chosen.split(",") if v.strip()]
    return [v for v in implementation("nats.go").published_versions() if version_key(v) >= version_key(OLDEST_SUPPORTED)]


@needs_go
@pytest.mark.releases
def test_every_nats_go_release_runs_every_flow_or_says_it_cannot(tmp_path: Path) -> None:
    versions = releases()
    scen = go_controls_file(tmp_path / "controls.yaml")
    argv = ["matrix", str(scen), "--seed", "3", "--reports", str(tmp_path / "r"), "-j", "1"]
    for v in versions:
        argv += ["--client", f"nats.go=={v}"]
    r = _harness(*argv, timeout=len(versions) * 600)
    out = json.loads(next((tmp_path / "r").glob("matrix-*/matrix.json")).read_text())
    known = load_known_issues(PROJECT / "known_issues" / "known_issues.yaml")
    bad, counts = [], {}
    for t in out["targets"]:
        assert t["journal"], f"{t['label']}: no journal ({r.stdout[-2000:]})"
        journal = json.loads(Path(t["journal"]).read_text())
        applicable = known.applicable(target_of(journal["header"]))
        for rec in journal["records"]:
            d = decide_scenario(rec["id"], [rec], applicable)
            counts[d.status] = counts.get(d.status, 0) + 1
            if d.status not in ("passed", "not_applicable", "known"):
                bad.append(f"{t['label']}: {rec['id']} {d.status}: {d.summary}")
    print(f"nats.go releases: {len(versions)}, controls decided: {counts}")
    assert not bad, "\n".join(bad)
    assert len(out["targets"]) == len(versions)


@needs_go
def test_bisect_finds_the_nats_go_release_that_fixed_ki_014(tmp_path: Path) -> None:
    # v1.41.0 is left out of the Go module proxy's list but resolves: bisect asks for an end it misses.
    r = _harness("bisect", "objectstore.get[disconnect.proxy_down@consumer_created~no-deadline]", "--client", "nats.go",
                 "--good", "v1.41.0", "--bad", "v1.42.0", "--seed", "4", "--reports", str(tmp_path), timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "first release where the verdict turns: nats.go v1.41.1 (failed on v1.41.0 -> passed)" in r.stdout, r.stdout
    res = json.loads(next(tmp_path.glob("bisect-*/bisect.json")).read_text())
    assert res["versions"] == ["v1.41.0", "v1.41.1", "v1.41.2", "v1.42.0"]
    assert [s["version"] for s in res["steps"]] == ["v1.41.0", "v1.42.0", "v1.41.1"]
