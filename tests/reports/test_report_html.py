"""report.html in a real headless Chromium: it renders, its filters hide what they should,
and a screenshot is saved next to the page (look at it: tmp dir printed on failure).

The filters' initial state comes from the query string (`report.html?verdict=failed`), which
runs the same `apply()` as changing a filter by hand; `--dump-dom` prints the DOM after the
page's script ran, so `hidden` attributes there are what a user would (not) see.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.gate import decide
from harness.journal import Journal
from harness.known_issues import KnownIssue, KnownIssues, parse_range
from harness.report import write_outputs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it when root)")


def rec(sid: str, verdict: str, *checks: str, fault: str = "drain.close") -> dict:
    ev = [("runner", "prepared", 0.0), ("runner", "flow started", 0.1), ("agent", "received", 0.3),
          ("runner", "trigger fired", 0.5), ("runner", "fault injected", 0.55), ("runner", "terminal event", 0.55),
          ("runner", "fault healed", 2.0), ("agent", "outcome", 2.4), ("runner", "client closed", 3.2)]
    return {"id": sid, "flow": sid.split("[")[0], "fault": fault, "trigger": "blocked", "seed": 1, "verdict": verdict,
            "reason": f"{len(checks)} finding(s)" if checks else "",
            "findings": [{"check": c, "summary": f"{c}: left behind", "evidence": "Traceback\n  line 1\n  line 2"}
                         for c in checks],
            "events": [{"t": t, "source": s, "what": w} for s, w, t in ev
                       if fault != "none" or w not in ("trigger fired", "fault injected", "terminal event", "fault healed")],
            "timings": {"wall": 3.5, "inherent": 3.3, "overhead": 0.2},
            "replay": f"harness run 's.yaml::{sid}' --seed 1" if verdict != "passed" else ""}


def page(tmp_path: Path) -> Path:
    records = (rec("kv.watch[drain.close@blocked]", "failed", "iterators"),
               rec("next.fetch[drain.unsubscribe@waiting]", "failed", "tasks"),
               rec("kv.watch[none]", "passed", fault="none"))
    (tmp_path / "KI-008").mkdir()
    (tmp_path / "KI-008/repro.py").write_text("# repro\n")
    known = KnownIssues(tmp_path / "known_issues.yaml", (KnownIssue(
        "KI-008", "a KV watcher's iterator never ends after close", ("kv.watch[drain.close@blocked]",),
        frozenset({"iterators"}), parse_range("nats-py>=2.16.0,<=2.16.0", side="client"), parse_range("*", side="server"),
        link="https://example.invalid/KI-008", repro="KI-008/repro.py"),))
    j = Journal(tmp_path / "run/journal.jsonl", {"run_id": "r1", "seed": 1, "nats_py": "2.16.0", "nats_server": "v2.12.8",
                                                 "backend": "local"}, records)
    write_outputs(j, gate=decide([j], known))
    return tmp_path / "run/report.html"


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def dom(url: str) -> str:
    r = chromium("--dump-dom", url)
    assert r.returncode == 0 and "</html>" in r.stdout, r.stderr[-2000:]
    return r.stdout


def shown(html: str) -> set[str]:
    """Ids of the scenario articles the page shows (no `hidden` attribute)."""
    out = set()
    for m in re.finditer(r"<article ([^>]*)>", html):
        if not re.search(r"\bhidden\b", m.group(1)):
            out.add(re.search(r"id=\"([^\"]+)\"", m.group(1)).group(1))
    return out


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    text = page(tmp_path).read_text()
    assert not re.search(r"<script[^>]+src|<link\b|url\(|@import", text)
    assert "<table id=counts>" in text and "<svg class=timeline" in text


def test_the_page_renders_with_timelines_and_every_scenario_shown(tmp_path: Path) -> None:
    p = page(tmp_path)
    html = dom(p.as_uri())
    assert "showing 3 of 3 scenarios" in html  # the script ran
    assert shown(html) == {"kv.watch[drain.close@blocked]", "next.fetch[drain.unsubscribe@waiting]", "kv.watch[none]"}
    assert html.count("class=\"fault-window\"") == 2  # the no-fault control has no fault window
    for label in ("trigger", "inject", "heal", "terminal", "close"):
        assert f"mark mark-{label}" in html, label
    assert "https://example.invalid/KI-008" in html and "KI-008/repro.py" in html
    shot = p.with_name("report.png")
    r = chromium("--window-size=1300,1100", f"--screenshot={shot}", p.as_uri())
    assert r.returncode == 0 and shot.stat().st_size > 10_000, r.stderr[-2000:]


def test_filters_hide_what_they_should(tmp_path: Path) -> None:
    p = page(tmp_path)
    failed = dom(p.as_uri() + "?verdict=failed")
    assert shown(failed) == {"kv.watch[drain.close@blocked]", "next.fetch[drain.unsubscribe@waiting]"}
    assert "showing 2 of 3 scenarios" in failed
    new = dom(p.as_uri() + "?known=new")
    assert shown(new) == {"next.fetch[drain.unsubscribe@waiting]"}
    both = dom(p.as_uri() + "?flow=kv.watch&check=iterators")
    assert shown(both) == {"kv.watch[drain.close@blocked]"}
    known = p.with_name("report-known.png")
    r = chromium("--window-size=1300,700", f"--screenshot={known}", p.as_uri() + "?known=known")
    assert r.returncode == 0 and known.stat().st_size > 10_000, r.stderr[-2000:]


def soak_rec(sid: str, samples: list[dict]) -> dict:
    from harness.checks.memory import MemorySeries, find_growth

    series = MemorySeries.from_samples(samples)
    found = find_growth(series)
    r = rec(sid, "failed" if found else "passed", fault="none")
    r["findings"] = [{"check": f.check, "summary": f.summary, "evidence": f.evidence} for f in found]
    r["series"] = {"memory": series.to_json()}
    return r


def test_a_soaks_memory_is_plotted_per_metric_for_both_clients(tmp_path: Path) -> None:
    # nats-py's figures and nats.go's, as each agent's memory op reports them: one chart per
    # metric, the warm-up shaded, slope and bound printed, a metric beyond its bound marked.
    py = [{"traced": 1000 + 10 * i, "objects": 500, "tasks": 3, "subs": 1, "rss": 5e7, "server_mem": 1e7,
           "ack_pending": 50 * i, "redelivered": 0} for i in range(30)]
    go = [{"heap": 1.3e6 + 5600 * i, "heap_objects": 1300 + 17 * i, "goroutines": 9 + i, "subs": 0, "listeners": 0,
           "rss": 2e7, "server_mem": 1e7, "ack_pending": 0, "redelivered": 0} for i in range(25)]
    records = (soak_rec("soak.nak_delay[none]", py), soak_rec("selftest.soak_leak[none]", go))
    j = Journal(tmp_path / "run/journal.jsonl", {"run_id": "r1", "seed": 1, "nats_py": "2.16.0", "nats_server": "v2.12.8",
                                                 "backend": "local"}, records)
    write_outputs(j)
    p = tmp_path / "run/report.html"
    html = dom(p.as_uri())
    charts = re.findall(r"<svg class=\"memory-chart( over)?\" data-metric=\"([^\"]+)\"", html)
    assert sorted(m for _, m in charts) == sorted(list(py[0]) + list(go[0])), charts  # failed records first
    assert {m for over, m in charts if over} == {"heap", "heap_objects", "goroutines"}  # the leaky Go round
    assert html.count("class=\"warmup\"") == len(charts)
    assert "traced: slope 10 B/round (bound 1.02k)" in html and "ack_pending: slope 50 messages/round (context)" in html
    assert "heap: slope 5.6k B/round (bound 1.02k)" in html and "goroutines: slope 1 goroutines/round (bound 0.05)" in html
    assert "flat at 0 subscriptions" in html and "the first 6 are the warm-up" in html and "the first 5 are the warm-up" in html
    shot = p.with_name("report-memory.png")
    r = chromium("--window-size=1300,1400", f"--screenshot={shot}", p.as_uri())
    assert r.returncode == 0 and shot.stat().st_size > 10_000, r.stderr[-2000:]
