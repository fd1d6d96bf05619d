"""Progress lines as values: counts, elapsed time and the estimate, on a fake clock."""

from __future__ import annotations

from harness.progress import Progress, duration


def test_duration_is_short_and_fixed_in_form() -> None:
    assert [duration(s) for s in (0, 59.4, 60, 185, 3725)] == ["0s", "59s", "1m00s", "3m05s", "1h02m"]


def test_lines_count_what_did_not_pass_and_estimate_what_is_left() -> None:
    now = [100.0]
    p = Progress(total=4, clock=lambda: now[0])
    assert p.live_line() == "nats-chaos 0/4 · none failed · 0s elapsed"
    now[0] = 110.0
    p.finished({"id": "a[none]", "verdict": "passed", "timings": {"wall": 10.0}})
    now[0] = 130.0
    rec = {"id": "b[x]", "verdict": "failed", "timings": {"wall": 19.96}}
    p.finished(rec)
    assert p.live_line() == "nats-chaos 2/4 · failed 1 · 30s elapsed · ~30s left"
    assert p.plain_line(rec) == "[2/4 · failed 1 · 30s elapsed · ~30s left] FAIL b[x] (20.0s)"
    alone = {**rec, "lane": {"first_verdict": "failed"}}  # run again alone: harness/schedule.py
    assert p.plain_line(alone) == "[2/4 · failed 1 · 30s elapsed · ~30s left] FAIL b[x] (20.0s, judged alone in the serial lane)"
    p.finished({"id": "c[x]", "verdict": "error"})
    p.finished({"id": "d[x]", "verdict": "failed"})
    assert p.status() == "4/4 · failed 2, error 1 · 30s elapsed"
