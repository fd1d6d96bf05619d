"""The worked example (examples/order_worker/) runs as the README says a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_order_worker_example_runs_under_chaos_as_documented(tmp_path: Path) -> None:
    # The README's command, from the project folder: the user's module by its dotted name.
    harness = str(Path(sys.executable).with_name("harness"))
    r = subprocess.run(
        [harness, "run", "examples/order_worker/orders.yaml", "--flows", "examples.order_worker.orders",
         "-k", "none or bandwidth0", "--seed", "7", "--reports", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]  # findings
    records = {rec["id"]: rec for rec in json.loads((tmp_path / "latest/journal.json").read_text())["records"]}
    control = records["orders.worker[none]"]
    assert control["verdict"] == "passed", control["reason"]
    assert any(e["what"] == "outcome" and e.get("result", {}).get("orders") == 20 for e in control["events"])
    # A stall held past one poll: the worker's shutdown drain hangs (KI-007), in the user's code.
    stalled = records["orders.worker[stall.bandwidth0@in_call]"]
    stuck = [f for f in stalled["findings"] if f["check"] == "iterators"]
    assert stalled["verdict"] == "failed" and stuck, (stalled["reason"], stalled["findings"])
    assert "order worker still pending" in stuck[0]["summary"]
    assert "orders.py" in stuck[0]["evidence"] and "in drain" in stuck[0]["evidence"], stuck[0]["evidence"]


def test_a_flow_module_that_cannot_be_imported_is_a_usage_error() -> None:
    harness = str(Path(sys.executable).with_name("harness"))
    r = subprocess.run([harness, "list", "examples/order_worker/orders.yaml", "--flows", "examples.no_such_module"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    assert r.stderr.startswith("harness list: cannot import flow module 'examples.no_such_module'")
    assert "Hint:" in r.stderr
