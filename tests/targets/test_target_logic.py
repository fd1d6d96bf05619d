"""Pure logic of targets, matrix and bisect, on values built in the test (no servers, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import bisect as bis
from harness import matrix as mx
from harness.targets import LOCKS, ClientTarget, TargetError, atomic_install, nearest_versions, parse_client
from harness.targets.nats_py import _version_key


def test_a_client_spec_names_implementation_version_or_path() -> None:
    assert parse_client("nats-py==2.8.0") == ClientTarget("nats-py", "2.8.0", "release")
    assert parse_client(None).spec == "nats-py==2.16.0"  # the pinned release is the default
    assert parse_client("nats-py").source == "release"
    t = parse_client("nats-py@/src/nats.py")
    assert (t.source, t.path, t.spec) == ("path", "/src/nats.py", "nats-py@/src/nats.py")
    assert ClientTarget("nats-py", "2.8.0", "release").label == "nats-py 2.8.0"
    assert ClientTarget("nats-py", "2.17.0.dev0", "path", "/src/n", "3f2a1bc").label == "nats-py @ /src/n (2.17.0.dev0, 3f2a1bc)"


def test_an_unknown_implementation_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(TargetError) as e:
        parse_client("nats.rs==0.1")
    assert "unknown client implementation 'nats.rs'" in e.value.summary and "nats-py" in e.value.hint


def test_nearest_versions_surround_the_wanted_one() -> None:
    pub = ["2.0.0", "2.1.0", "2.9.1", "2.10.0", "2.16.0"]
    assert nearest_versions("2.9.5", pub, _version_key) == ["2.1.0", "2.9.1", "2.10.0"]
    assert nearest_versions("9.0.0", pub, _version_key) == ["2.9.1", "2.10.0", "2.16.0"]
    assert sorted(pub, key=_version_key)[-1] == "2.16.0"  # 2.16 after 2.9, not before


def test_atomic_install_leaves_nothing_on_failure_and_rebuilds_an_interrupted_one(tmp_path: Path) -> None:
    dest = tmp_path / "nats-py-9.9.9"

    def fails(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "half").write_text("x")
        raise TargetError("boom")

    with pytest.raises(TargetError):
        atomic_install(dest, fails, "fp")
    assert [p.name for p in tmp_path.iterdir()] == [LOCKS]  # nothing half-installed (the lock file stays)
    dest.mkdir()  # an earlier install interrupted: no .complete stamp
    (dest / "stale").write_text("x")
    built = []
    assert atomic_install(dest, lambda tmp: (tmp.mkdir(), built.append(1)), "fp") is True
    assert built and not (dest / "stale").exists() and (dest / ".complete").read_text() == "fp"
    assert atomic_install(dest, lambda tmp: built.append(2), "fp") is False  # reused
    assert built == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCKS, "nats-py-9.9.9"]


def _rec(sid: str, verdict: str, finding: str = "") -> dict:
    findings = [{"check": "tasks", "summary": finding, "evidence": ""}] if finding else []
    return {"id": sid, "verdict": verdict, "reason": "", "findings": findings}


def test_matrix_marks_regressions_and_fixes_against_the_first_target() -> None:
    base = [_rec("a[none]", "passed"), _rec("b[x]", "failed", "task leaked"), _rec("c[x]", "passed"), _rec("d[x]", "not_applicable")]
    new = [_rec("a[none]", "passed"), _rec("b[x]", "passed"), _rec("c[x]", "failed", "consumer left"), _rec("d[x]", "passed")]
    cmp = mx.compare([("nats-py 2.15.0", base), ("nats-py 2.16.0", new)])
    assert cmp.cells[("a[none]", "nats-py 2.16.0")].change == ""
    assert cmp.cells[("b[x]", "nats-py 2.16.0")].change == "fixed"
    assert cmp.cells[("c[x]", "nats-py 2.16.0")] == mx.Cell("failed", "regressed", "[tasks] consumer left")
    assert cmp.cells[("d[x]", "nats-py 2.16.0")].change == "changed"
    assert all(c.change == "" for (s, t), c in cmp.cells.items() if t == "nats-py 2.15.0")
    md = mx.render_markdown(cmp)
    assert "| scenario | nats-py 2.15.0 (baseline) | nats-py 2.16.0 |" in md
    assert "failed **regressed**<br>[tasks] consumer left" in md
    assert "1 regressed, 1 fixed, 1 changed" in md
    assert mx.exit_status([1, 1], cmp) == 1
    assert mx.exit_status([0, 2], cmp) == 2  # a cell that could not look


def test_a_scenario_missing_on_one_target_is_shown_not_dropped() -> None:
    cmp = mx.compare([("A", [_rec("x", "passed")]), ("B", [])])
    assert cmp.cells[("x", "B")].verdict == "missing" and cmp.cells[("x", "B")].change == "changed"


def test_bisect_finds_the_first_release_whose_verdict_turns_in_few_runs() -> None:
    versions = [f"2.{i}.0" for i in range(17)]
    turned_at = 9
    asked: list[str] = []

    def verdict_of(v: str) -> bis.Step:
        asked.append(v)
        i = versions.index(v)
        return bis.Step(v, "failed" if i >= turned_at else "passed", "", f"/j/{v}")

    res = bis.bisect(versions, verdict_of)
    assert res.first_turned.version == "2.9.0" and res.last_same.version == "2.8.0"
    assert len(asked) <= 2 + 4  # both ends, then log2(16) steps
    assert asked[:2] == ["2.0.0", "2.16.0"]


def test_bisect_refuses_when_both_ends_agree() -> None:
    with pytest.raises(bis.BisectError) as e:
        bis.bisect(["1", "2", "3"], lambda v: bis.Step(v, "passed", "", ""))
    assert "passed on both 1 and 3" in e.value.summary


def test_between_lists_the_published_releases_in_either_direction() -> None:
    pub = ["2.10.0", "2.9.0", "2.1.0", "2.16.0"]
    assert bis.between(pub, "2.1.0", "2.10.0", _version_key) == ["2.1.0", "2.9.0", "2.10.0"]
    assert bis.between(pub, "2.16.0", "2.9.0", _version_key) == ["2.16.0", "2.10.0", "2.9.0"]
    with pytest.raises(bis.BisectError):
        bis.between(pub, "2.2.0", "2.10.0", _version_key)


def test_between_takes_an_end_the_registrys_list_leaves_out_if_it_resolves() -> None:
    # The Go module proxy lists v1.39.1 then v1.41.1; v1.41.0 (KI-014's affected end) resolves anyway.
    from harness.targets.nats_go import version_key

    pub = ["v1.39.1", "v1.41.1", "v1.41.2", "v1.42.0"]
    resolves = {"v1.41.0"}.__contains__
    assert bis.between(pub, "v1.41.0", "v1.42.0", version_key, resolves) == ["v1.41.0", "v1.41.1", "v1.41.2", "v1.42.0"]
    with pytest.raises(bis.BisectError) as e:
        bis.between(pub, "v1.41.9", "v1.42.0", version_key, resolves)
    assert "v1.41.9 is not a published release" in e.value.summary


def test_a_nats_go_checkout_between_tags_is_named_as_go_names_it() -> None:
    from harness.targets.nats_go import pseudo_version

    assert pseudo_version("v1.55.0", "20261204120000", "3f2a1bc4d5e6a7b8") == "v1.55.1-0.20261204120000-3f2a1bc4d5e6"
    assert pseudo_version("v1.56.0-rc.1", "20261204120000", "3f2a1bc4d5e6") == "v1.56.0-rc.1.0.20261204120000-3f2a1bc4d5e6"
    assert pseudo_version("", "20261204120000", "3f2a1bc4d5e6") == "v0.0.0-20261204120000-3f2a1bc4d5e6"
