"""The HTML report: one self-contained page (no network) a maintainer reads in a minute."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from harness.journal import Journal

if TYPE_CHECKING:
    from harness.gate import GateResult

SYMBOL = {"passed": "PASS", "failed": "FAIL", "inconclusive": "INCONCLUSIVE", "error": "ERROR"}


def render(journal: Journal, gate: GateResult | None = None) -> str:
    """The page for one run."""
    return html_page(dict(journal.header), sorted(journal.records, key=lambda r: r["id"]))


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
