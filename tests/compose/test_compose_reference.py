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
            for sc in load_paths([ROOT / "scenarios"]):
                rec = runner.run(sc)
                out[sc.id] = (rec.verdict, tuple(sorted({f.check for f in rec.findings})))
        finally:
            runner.close()
    return out


def test_reference_verdicts_match_between_local_and_compose() -> None:
    local = _verdicts(LocalEnvironment)
    compose = _verdicts(ComposeEnvironment, ready_timeout=30)
    assert set(local) == set(compose)
    differ = {k: (local[k], compose[k]) for k in local if local[k] != compose[k]}
    assert not differ, "verdict (checks) local vs compose:\n" + "\n".join(f"  {k}: {a} vs {b}" for k, (a, b) in differ.items())
    assert all(v[0] in ("passed", "failed") for v in local.values()), local
