"""Reports: a JSON journal per run, a Markdown summary, and a self-contained HTML page.

`reports/<run-id>/journal.json` holds a header (seed, versions, backend, settings) and
one record per scenario; `reports/latest` points at the newest run.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

SYMBOL = {"passed": "PASS", "failed": "FAIL", "inconclusive": "INCONCLUSIVE", "error": "ERROR"}


def write_run(run_dir: Path, header: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    """Write journal.json, summary.md and report.html into `run_dir`; point `latest` at it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    records = sorted(records, key=lambda r: r["id"])
    journal = {"header": header, "counts": dict(Counter(r["verdict"] for r in records)), "records": records}
    (run_dir / "journal.json").write_text(json.dumps(journal, indent=2, default=str))
    (run_dir / "summary.md").write_text(markdown_summary(header, records))
    (run_dir / "report.html").write_text(html_page(header, records))
    latest = run_dir.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(run_dir.name)
    except OSError:
        pass
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a") as f:
            f.write(markdown_summary(header, records))
    return run_dir / "journal.json"


def markdown_summary(header: dict[str, Any], records: list[dict[str, Any]]) -> str:
    counts = Counter(r["verdict"] for r in records)
    lines = [
        f"# nats-chaos run {header.get('run_id', '')}",
        "",
        f"seed `{header.get('seed')}` · backend `{header.get('backend')}` · nats-py `{header.get('nats_py')}` · "
        f"nats-server `{header.get('nats_server')}` · toxiproxy `{header.get('toxiproxy')}`",
        "",
        " · ".join(f"{v}: {counts.get(v, 0)}" for v in ("passed", "failed", "inconclusive", "error")),
        "",
        "| scenario | verdict | findings | wall s | overhead s |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        first = r["findings"][0]["summary"] if r["findings"] else r.get("reason", "")
        more = f" (+{len(r['findings']) - 1})" if len(r["findings"]) > 1 else ""
        lines.append(
            f"| `{r['id']}` | {SYMBOL[r['verdict']]} | {first.replace('|', '/')}{more} | "
            f"{r['timings']['wall']:.2f} | {r['timings']['overhead']:.3f} |"
        )
    replays = [r for r in records if r.get("replay")]
    if replays:
        lines += ["", "Replay a scenario:", ""] + [f"    {r['replay']}" for r in replays]
    return "\n".join(lines) + "\n"


def html_page(header: dict[str, Any], records: list[dict[str, Any]]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><meta charset=utf-8><title>nats-chaos report</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em}details{margin:.4em 0}"
        ".passed{color:#176f2c}.failed{color:#b00020}.inconclusive{color:#a15c00}.error{color:#6a1b9a}"
        "pre{background:#f5f5f5;padding:.5em;overflow:auto;font-size:12px}"
        ".tl{position:relative;height:22px;background:#eef;margin:.3em 0}.tl span{position:absolute;top:0;width:2px;height:22px}"
        "</style>",
        f"<h1>nats-chaos run {e(str(header.get('run_id', '')))}</h1>",
        f"<p>{e(json.dumps({k: v for k, v in header.items() if k != 'settings'}))}</p>",
    ]
    for r in records:
        wall = max(r["timings"]["wall"], 1e-3)
        marks = "".join(
            f'<span title="{e(ev["source"] + ": " + ev["what"])} @ {ev["t"]:.3f}s" '
            f'style="left:{min(ev["t"] / wall, 1) * 100:.1f}%;background:{"#b00020" if "fault" in ev["what"] else "#336"}"></span>'
            for ev in r["events"]
        )
        findings = "".join(
            f"<li><b>{e(f['check'])}</b>: {e(f['summary'])}<pre>{e(f['evidence'])}</pre></li>" for f in r["findings"]
        )
        events = "\n".join(f"{ev['t']:8.3f}s {ev['source']:6s} {ev['what']} {e(json.dumps({k: v for k, v in ev.items() if k not in ('t', 'source', 'what')}))}" for ev in r["events"])
        parts.append(
            f"<details{' open' if r['verdict'] != 'passed' else ''}><summary class={r['verdict']}>"
            f"<b>{SYMBOL[r['verdict']]}</b> {e(r['id'])} — {e(r.get('reason', ''))} ({r['timings']['wall']:.2f}s)</summary>"
            f"<div class=tl>{marks}</div><ul>{findings}</ul>"
            + (f"<p>Replay: <code>{e(r['replay'])}</code></p>" if r.get("replay") else "")
            + f"<pre>{events}</pre></details>"
        )
    return "\n".join(parts)
