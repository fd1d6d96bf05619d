"""The GitHub Actions workflows lint clean with actionlint (and actionlint does catch a
broken one), and the nightly matrix is what the issue describes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import ci_matrix  # noqa: E402


def test_make_lint_is_clean() -> None:
    r = subprocess.run(["bash", "scripts/lint.sh"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if r.returncode == 2 and "Go toolchain not found" in r.stderr:
        pytest.skip(r.stderr.splitlines()[0])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 workflow(s) clean" in r.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    actionlint = ROOT / ".bin/actionlint"
    if not actionlint.exists():
        pytest.skip("actionlint not built (make lint builds it)")
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ matrix.nope }}\n")
    r = subprocess.run([str(actionlint), "-no-color", "-oneline", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "property \"nope\" is not defined" in r.stdout, r.stdout + r.stderr


def test_the_nightly_matrix_spans_clients_servers_and_backends() -> None:
    m = ci_matrix.matrix(["2.16.0", "2.16.0rc1", "2.15.0", "2.14.0"], ["2.15.1", "2.15.0", "2.14.6", "2.12.8"])["include"]
    assert {c["client"] for c in m} == {"nats-py==2.16.0", "nats-py==2.15.0", "nats-py@nats.py"}
    assert {c["server"] for c in m} == {"2.15.1", "2.14.6"}
    assert [c["backend"] for c in m].count("compose") == 1 and len(m) == 7
    assert m[0]["name"] == "nats-py-2.16.0_srv-2.15.1_local"  # the baseline the final job diffs against
    assert len({c["name"] for c in m}) == len(m)  # artifact names are unique
    json.dumps(m)


def test_the_nightly_matrix_adds_nats_gos_current_release_against_both_servers() -> None:
    m = ci_matrix.matrix(["2.16.0", "2.15.0"], ["2.15.1", "2.14.6"], ["v1.54.0", "v1.55.0", "v1.55.1-rc.1"])["include"]
    go = [c for c in m if c["client"].startswith("nats.go")]
    assert [(c["client"], c["server"], c["backend"]) for c in go] == [
        ("nats.go==v1.55.0", "2.15.1", "local"), ("nats.go==v1.55.0", "2.14.6", "local")]
    assert m[0]["client"] == "nats-py==2.16.0" and len({c["name"] for c in m}) == len(m)
