"""memory: a slope per metric after a warm-up, against a stated bound per round (values built here)."""

from __future__ import annotations

import pytest
from checks_helpers import FakeSources, run_step

from harness.checks import AFTER_FLOW
from harness.checks.memory import BOUNDS, MemorySeries, find_growth, slope, warmup_rounds


def samples(rounds: int, traced_per_round: float = 0.0, objects_per_round: float = 0.0, noise: float = 0.0) -> list[dict]:
    out = []
    for i in range(rounds):
        wobble = noise if i % 2 else -noise  # alternating noise: no trend of its own
        out.append({"traced": 200_000 + traced_per_round * i + wobble, "objects": 23_000 + objects_per_round * i,
                    "tasks": 7, "subs": 1, "rss": 29_000_000 + 4096 * (i // 10), "server_mem": 1, "ack_pending": 50 * i,
                    "redelivered": 0})
    return out


def test_slope_is_least_squares_growth_per_round() -> None:
    assert slope([1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([5, 5, 5]) == 0.0
    assert slope([10, 0, 10, 0, 10, 0]) == pytest.approx(-10 / 17.5 * 1.5, rel=1e-6)
    assert slope([4]) == 0.0


def test_warm_up_is_a_fifth_of_the_rounds_and_at_least_two() -> None:
    assert warmup_rounds(5) == 2 and warmup_rounds(25) == 5 and warmup_rounds(100) == 20


def test_a_little_growth_per_round_is_found_with_the_series_as_evidence() -> None:
    (f,) = find_growth(MemorySeries.from_samples(samples(25, traced_per_round=4096, noise=300)))
    assert f.check == "memory"
    assert f.summary.startswith("traced grows 409")  # 4096 per round, give or take the alternating noise
    assert f.summary.endswith("B per round over 20 rounds after a 5-round warm-up (bound 1024 per round)")
    assert "traced per round (warm-up first): 199700, 204396" in f.evidence and "slopes per round:" in f.evidence


def test_noise_and_a_warm_up_that_fills_caches_are_not_growth() -> None:
    s = samples(30, noise=2000)
    for i in range(4):  # the first rounds fill caches: excluded by the warm-up
        s[i]["traced"] -= 50_000 * (4 - i)
    assert find_growth(MemorySeries.from_samples(s)) == []


def test_context_metrics_are_recorded_not_judged() -> None:
    # ack_pending grows by design under nak(delay); RSS lags what the runtime frees
    series = MemorySeries.from_samples(samples(30))
    assert series.slopes()["ack_pending"] == 50.0 and find_growth(series) == []


def test_each_judged_metric_has_its_bound() -> None:
    got = find_growth(MemorySeries.from_samples(samples(30, objects_per_round=BOUNDS["objects"] + 1)))
    assert [f.summary.split()[0] for f in got] == ["objects"]
    leaky_tasks = [dict(x, tasks=7 + i) for i, x in enumerate(samples(30))]
    assert [f.summary.split()[0] for f in find_growth(MemorySeries.from_samples(leaky_tasks))] == ["tasks"]


def test_too_few_rounds_after_the_warm_up_say_nothing() -> None:
    assert find_growth(MemorySeries.from_samples(samples(5, traced_per_round=1e6))) == []


def test_series_json_is_what_the_report_plots() -> None:
    d = MemorySeries.from_samples(samples(10, traced_per_round=10)).to_json()
    assert d["rounds"] == 10 and d["warmup"] == 2 and len(d["metrics"]["traced"]) == 10
    assert d["units"]["traced"] == "B" and d["bounds"]["traced"] == BOUNDS["traced"] and d["slopes"]["traced"] == 10.0


def test_step_judges_a_soak_and_ignores_other_scenarios() -> None:
    assert run_step("memory", AFTER_FLOW, FakeSources(samples=[])) == []
    s = FakeSources(samples=samples(25, traced_per_round=8192))
    (f,) = run_step("memory", AFTER_FLOW, s)
    assert "traced grows 8192 B per round" in f.summary
    assert s.events[0][0] == "memory slopes" and s.events[0][1]["rounds"] == 25
