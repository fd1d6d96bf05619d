"""The reference set against the oldest and the newest supported nats-py release, side by side
(`harness matrix`), and `harness bisect` on a real pair of releases.

Whatever the verdicts, no `error`: every release is a valid target. What differs is real and
documented: KI-018 (nats-py 2.0.0–2.2.0) makes the `nc.drain()` ack scenarios fail on 2.0.0
and pass on 2.16.0 (**fixed**), and 2.0.0 has no ObjectStore or KV watch (not applicable).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
OLDEST, NEWEST = "nats-py==2.0.0", "nats-py==2.16.0"


def _harness(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ})


def test_reference_set_on_the_oldest_and_newest_release_side_by_side(tmp_path: Path) -> None:
    r = _harness("matrix", "scenarios/reference.yaml", "--client", OLDEST, "--client", NEWEST, "-n", "2", "-j", "1",
                 "--seed", "21", "--reports", str(tmp_path), timeout=1500)
    assert r.returncode == 1, r.stdout[-4000:] + r.stderr  # findings (known issues), no error
    out = next(tmp_path.glob("matrix-*"))
    m = json.loads((out / "matrix.json").read_text())
    old, new = (t["label"] for t in m["targets"])
    assert old.startswith("nats-py 2.0.0 / nats-server") and new.startswith("nats-py 2.16.0 / nats-server")
    cells = {(c["scenario"], c["target"]): c for c in m["cells"]}
    errors = [k for k, c in cells.items() if c["verdict"] in ("error", "missing")]
    assert not errors, errors
    for sid in ("ack.ack[drain.nc_drain@before_ack]", "ack.ack_sync[drain.nc_drain@before_ack]"):  # KI-018
        assert cells[(sid, old)]["verdict"] == "failed" and "nc_drain did not return" in cells[(sid, old)]["line"]
        assert cells[(sid, new)]["verdict"] == "passed" and cells[(sid, new)]["change"] == "fixed"
    assert cells[("objectstore.get[none]", old)]["verdict"] == "not_applicable"
    assert "object_store" in cells[("objectstore.get[none]", old)]["line"]
    assert cells[("objectstore.get[none]", new)]["verdict"] == "passed"
    md = (out / "matrix.md").read_text()
    assert f"| scenario | {old} (baseline) | {new} |" in md
    assert "passed **fixed**" in md
    for t in m["targets"]:  # each cell is a whole run with its own journal naming its target
        j = json.loads(Path(t["journal"]).read_text())
        assert j["header"]["target"]["client"]["version"] == t["client"].split("==")[1]


def test_bisect_finds_the_release_that_fixed_ki_018(tmp_path: Path) -> None:
    r = _harness("bisect", "ack.ack[drain.nc_drain@before_ack]", "--client", "nats-py", "--good", "2.1.7",
                 "--bad", "2.3.0", "--seed", "4", "--reports", str(tmp_path), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "first release where the verdict turns: nats-py 2.3.0 (failed on 2.2.0 -> passed)" in r.stdout, r.stdout
    res = json.loads(next(tmp_path.glob("bisect-*/bisect.json")).read_text())
    assert res["versions"] == ["2.1.7", "2.2.0", "2.3.0"]
    assert [s["version"] for s in res["steps"]] == ["2.1.7", "2.3.0", "2.2.0"]
    assert Path(res["first_turned"]["journal"]).is_file() and Path(res["last_same"]["journal"]).is_file()


def test_bisect_with_the_same_verdict_at_both_ends_is_exit_2(tmp_path: Path) -> None:
    r = _harness("bisect", "next.fetch[none]", "--client", "nats-py", "--good", "2.15.0", "--bad", "2.16.0",
                 "--seed", "4", "--reports", str(tmp_path), timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("the verdict is passed on both 2.15.0 and 2.16.0: nothing to bisect"), r.stderr
