"""The HTML report: one self-contained page (no network: inline CSS, inline SVG, inline
script) that a maintainer reads in a minute.

Header: the target and counts (by verdict; known/new/flaky when known issues were
applied) as tables. Filters: verdict, flow, fault, check, known/new; the query string
sets their initial state (`report.html?verdict=failed&known=new`), through the same
`apply()` a change of a filter runs, so a link can share a view. Per scenario: an SVG
timeline (fault window shaded; trigger, inject, heal, terminal event, close and the
checks phase labelled), a soak's memory series (harness/report_memory.py), findings with their evidence folded, the known issues that
explain them (link, repro) and the replay command.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from harness.journal import SYMBOL, VERDICTS, Journal
from harness.report_memory import memory_charts

if TYPE_CHECKING:
    from harness.gate import GateResult, ScenarioDecision
    from harness.known_issues import KnownIssue

e = html.escape

# Timeline geometry (SVG user units).
W, LEFT, RIGHT = 1000.0, 8.0, 8.0
MARKS = {  # event -> (label, colour); drawn as labelled vertical lines
    "trigger fired": ("trigger", "#555"),
    "fault injected": ("inject", "#b00020"),
    "fault healed": ("heal", "#176f2c"),
    "terminal event": ("terminal", "#6a1b9a"),
    "client closed": ("close", "#1f4e99"),
}
KNOWN_FILTERS = {  # filter value -> gate statuses it shows
    "known": ("known", "known-flaky"),
    "new": ("new",),
    "flaky": ("flaky", "known-flaky"),
    "could-not-look": ("inconclusive", "error"),
}

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em 2em;color:#222}
h1{font-size:1.4em;margin:.2em 0 .6em}
table{border-collapse:collapse;margin:.3em 1.5em .6em 0;display:inline-table;vertical-align:top}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}th{background:#f3f3f3}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.passed{color:#176f2c}.failed{color:#b00020}.inconclusive{color:#a15c00}.error{color:#6a1b9a}
.badge{display:inline-block;border-radius:3px;padding:0 .35em;margin-left:.4em;font-size:12px;border:1px solid}
.b-known,.b-known-flaky{color:#1f4e99}.b-new{color:#fff;background:#b00020;border-color:#b00020}
.b-flaky{color:#a15c00}.b-error,.b-inconclusive{color:#6a1b9a}
form{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd;z-index:1}
form label{margin-right:1em}#shown{color:#666}
article{border-bottom:1px solid #eee;padding:.3em 0}
article>details>summary{cursor:pointer;font-size:15px}
pre{background:#f6f6f6;padding:.5em;overflow:auto;font-size:12px;max-height:30em}
svg{display:block;width:100%;max-width:1000px;height:auto;margin:.4em 0}
.partial{background:#fff3cd;border:1px solid #e0c36b;padding:.4em .8em}
ul.findings{margin:.3em 0}code{font-size:12px}
"""

SCRIPT = """
const FILTERS=['verdict','flow','fault','check','known'];
function apply(){
  const v={};FILTERS.forEach(k=>v[k]=document.getElementById('f-'+k).value);
  let n=0;const all=document.querySelectorAll('article.sc');
  all.forEach(a=>{
    const ok=(!v.verdict||a.dataset.verdict===v.verdict)&&(!v.flow||a.dataset.flow===v.flow)
      &&(!v.fault||a.dataset.fault===v.fault)&&(!v.check||a.dataset.checks.split(' ').includes(v.check))
      &&(!v.known||a.dataset.known.split(' ').includes(v.known));
    a.hidden=!ok;if(ok)n++;});
  document.getElementById('shown').textContent='showing '+n+' of '+all.length+' scenarios';
  const q=new URLSearchParams();FILTERS.forEach(k=>{if(v[k])q.set(k,v[k]);});
  try{history.replaceState(null,'',q.toString()?'?'+q:location.pathname);}catch(err){}
}
document.addEventListener('DOMContentLoaded',()=>{
  const q=new URLSearchParams(location.search);
  FILTERS.forEach(k=>{const s=document.getElementById('f-'+k);if(q.has(k))s.value=q.get(k);s.addEventListener('change',apply);});
  apply();
});
"""


def render(journal: Journal, gate: GateResult | None = None, *, out_dir: Path | None = None) -> str:
    """The page for one run; `gate` adds known/new/flaky, `out_dir` makes repro links relative to it."""
    records = sorted(journal.records, key=lambda r: r["id"])
    decisions = gate.by_id() if gate is not None else {}
    issues = {ki.id: ki for ki in gate.known.issues} if gate is not None else {}
    out_dir = out_dir or journal.run_dir
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>nats-chaos run {e(str(journal.header.get('run_id', '')))}</title><style>{CSS}</style></head><body>",
        _header(journal, gate),
        _filters(records, decisions),
        "<section id=scenarios>",
    ]
    for r in records:
        parts.append(_scenario(r, decisions.get(r["id"]), issues, gate, out_dir))
    parts += ["</section>", f"<script>{SCRIPT}</script></body></html>"]
    return "\n".join(parts)


def _header(journal: Journal, gate: GateResult | None) -> str:
    from harness.report import target_line

    h = journal.header
    meta = [("target", target_line(h)), ("seed", h.get("seed")), ("backend", h.get("backend")),
            ("toxiproxy", h.get("toxiproxy")), ("harness", h.get("harness")), ("started", h.get("started"))]
    if gate is not None and gate.known.issues:
        meta.append(("known issues", f"{gate.known.path} ({len(gate.known.issues)})"))
    out = [f"<h1>nats-chaos run {e(str(h.get('run_id', '')))}</h1>"]
    if not journal.complete:
        out.append(f"<p class=partial><b>Partial run</b>: the journal has no end line (killed or still running); "
                   f"{len(journal.records)} finished scenario(s) recorded.</p>")
    out.append("<table id=meta>" + "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in meta if v is not None)
               + "</table>")
    counts = journal.counts()
    rows = "".join(f"<tr><td class={v}>{v}</td><td class=n>{counts.get(v, 0)}</td></tr>" for v in VERDICTS)
    out.append(f"<table id=counts><tr><th>verdict</th><th>scenarios</th></tr>{rows}"
               f"<tr><th>total</th><td class=n>{len(journal.records)}</td></tr></table>")
    if gate is not None:
        g = {s: len(gate.with_status(s)) for s in ("known", "known-flaky", "new", "flaky")}
        grows = "".join(f"<tr><td>{k}</td><td class=n>{v}</td></tr>" for k, v in g.items())
        stale = len(gate.stale())
        out.append(f"<table id=known-counts><tr><th>findings</th><th>scenarios</th></tr>{grows}"
                   f"<tr><td>stale known issues</td><td class=n>{stale}</td></tr></table>")
    if journal.infra:
        out.append("<h2>Infrastructure</h2><ul>" + "".join(f"<li>{e(str(ev.get('summary', ev)))}</li>" for ev in journal.infra)
                   + "</ul>")
    return "\n".join(out)


def _select(name: str, label: str, options: Iterable[str]) -> str:
    opts = "".join(f"<option value='{e(o)}'>{e(o)}</option>" for o in options)
    return f"<label>{label} <select id=f-{name} name={name}><option value=''>all</option>{opts}</select></label>"


def _filters(records: list[Mapping[str, Any]], decisions: Mapping[str, Any]) -> str:
    flows = sorted({r["flow"] for r in records})
    faults = sorted({r.get("fault") or "none" for r in records})
    checks = sorted({f["check"] for r in records for f in r.get("findings", ())})
    known = list(KNOWN_FILTERS) if decisions else []
    return ("<form id=filters onsubmit='return false'>" + _select("verdict", "verdict", VERDICTS) + _select("flow", "flow", flows)
            + _select("fault", "fault", faults) + _select("check", "check", checks)
            + _select("known", "known/new", known) + "<span id=shown></span></form>")


def _known_tags(d: ScenarioDecision | None) -> str:
    if d is None:
        return ""
    return " ".join(k for k, statuses in KNOWN_FILTERS.items() if d.status in statuses)


def _scenario(r: Mapping[str, Any], d: ScenarioDecision | None, issues: Mapping[str, KnownIssue],
              gate: GateResult | None, out_dir: Path) -> str:
    checks = sorted({f["check"] for f in r.get("findings", ())})
    v = r["verdict"]
    wall = r["timings"]["wall"]
    badges = ""
    if d is not None and d.status != "passed":
        badges = f"<span class='badge b-{d.status}'>{e(d.status)}</span>"
        badges += "".join(f"<span class='badge b-known'>{e(i)}</span>" for i in d.issues)
        if d.flaky:
            badges += f"<span class='badge b-flaky'>verdicts {'/'.join(d.verdicts)}</span>"
    attrs = (f"class=sc id='{e(r['id'])}' data-verdict={v} data-flow='{e(r['flow'])}' "
             f"data-fault='{e(r.get('fault') or 'none')}' data-checks='{' '.join(checks)}' data-known='{_known_tags(d)}'")
    out = [f"<article {attrs}><details{' open' if v != 'passed' else ''}>",
           f"<summary><b class={v}>{SYMBOL[v]}</b> {e(r['id'])}{badges} — {e(r.get('reason', ''))} "
           f"<span style='color:#666'>({wall:.2f}s)</span></summary>",
           timeline_svg(r), memory_charts(r)]
    if r.get("findings"):
        out.append("<ul class=findings>")
        for f in r["findings"]:
            ev = f.get("evidence") or ""
            n = ev.count("\n") + 1 if ev else 0
            fold = f"<details><summary>evidence ({n} lines)</summary><pre>{e(ev)}</pre></details>" if ev else ""
            out.append(f"<li><b>{e(f['check'])}</b>: {e(f['summary'])}{fold}</li>")
        out.append("</ul>")
    if d is not None and d.issues:
        out.append("<p>Known issue(s): " + "; ".join(_issue_link(issues.get(i), i, gate, out_dir) for i in d.issues) + "</p>")
    if d is not None and d.unexplained:
        out.append(f"<p><b class=failed>New</b>: {e(', '.join(d.unexplained))} not explained by a known issue for this target</p>")
    if r.get("replay"):
        out.append(f"<p>Replay: <code>{e(r['replay'])}</code></p>")
    out.append(cluster_table(r))
    events = "\n".join(
        f"{ev['t']:8.3f}s {ev['source']:6s} {ev['what']} "
        f"{json.dumps({k: x for k, x in ev.items() if k not in ('t', 'source', 'what')}, default=str)}"
        for ev in r.get("events", ()))
    out.append(f"<details><summary>timeline events ({len(r.get('events', ()))})</summary><pre>{e(events)}</pre></details>")
    out.append("</details></article>")
    return "\n".join(out)


def cluster_table(r: Mapping[str, Any]) -> str:
    """A cluster scenario's state per node at the end (its `cluster state` event), "" otherwise."""
    ev = next((x for x in r.get("events", ()) if x.get("what") == "cluster state"), None)
    if ev is None:
        return ""
    rows = []
    for node, c in sorted((ev.get("nodes") or {}).items()):
        if c is None:
            rows.append(f"<tr><td>{e(node)}</td><td colspan=5>no copy (or no answer)</td></tr>")
            continue
        floors = ", ".join(f"{e(n)}={x}" for n, x in sorted((c.get("ack_floors") or {}).items()))
        rows.append(f"<tr><td>{e(node)}{' (meta leader)' if node == ev.get('meta_leader') else ''}</td>"
                    f"<td>{c['messages']}</td><td>{c['first_seq']}</td><td>{c['last_seq']}</td>"
                    f"<td>{e(c.get('leader') or '?')}</td><td>{floors}</td></tr>")
    return (f"<p>Cluster at the end, stream <code>{e(ev.get('stream', ''))}</code> per node:</p>"
            "<table class=cluster><tr><th>node</th><th>messages</th><th>first seq</th><th>last seq</th>"
            "<th>stream leader it names</th><th>consumer ack floors</th></tr>" + "".join(rows) + "</table>")


def _issue_link(ki: KnownIssue | None, issue_id: str, gate: GateResult | None, out_dir: Path) -> str:
    if ki is None:
        return e(issue_id)
    head = f"<a href='{e(ki.link)}'>{e(ki.id)}</a>" if ki.link else f"<b>{e(ki.id)}</b>"
    text = f"{head} {e(ki.title)}"
    if ki.repro and gate is not None:
        target = gate.known.path.parent / ki.repro
        try:
            href = os.path.relpath(target.resolve(), out_dir.resolve())
        except ValueError:
            href = str(target)
        text += f" (repro: <a href='{e(href)}'>{e(ki.repro)}</a>)"
    return text


def timeline_svg(r: Mapping[str, Any]) -> str:
    """One scenario's timeline: flow and checks phases as bars, the fault window shaded,
    trigger/inject/heal/terminal/close as labelled lines, agent events as ticks."""
    events = list(r.get("events", ()))
    wall = max(float(r["timings"]["wall"]), max((ev["t"] for ev in events), default=0.0), 1e-3)

    def x(t: float) -> float:
        return LEFT + min(max(t, 0.0), wall) / wall * (W - LEFT - RIGHT)

    def first(what: str, source: str = "runner") -> float | None:
        return next((ev["t"] for ev in events if ev["what"] == what and ev["source"] == source), None)

    parts = [f"<svg class=timeline viewBox='0 0 {W:.0f} 84' role=img aria-label='timeline of {e(r['id'])}'>",
             f"<rect x='{LEFT}' y='40' width='{W - LEFT - RIGHT:.1f}' height='16' fill='#f2f2f7'/>"]
    inject, heal = first("fault injected"), first("fault healed")
    if inject is not None:
        end = heal if heal is not None else wall
        parts.append(f"<rect class=fault-window x='{x(inject):.1f}' y='32' width='{max(x(end) - x(inject), 1.5):.1f}' "
                     f"height='32' fill='#f8c9cf' opacity='.8'><title>fault {e(str(r.get('fault')))}: "
                     f"{inject:.2f}s to {end:.2f}s</title></rect>")
    start, outcome = first("flow started"), first("outcome", "agent")
    if start is not None:
        end = outcome if outcome is not None else wall
        parts.append(f"<rect class=phase-flow x='{x(start):.1f}' y='45' width='{max(x(end) - x(start), 1):.1f}' height='6' "
                     f"fill='#7d8fb3'><title>flow {start:.2f}s to {end:.2f}s</title></rect>")
        parts.append(f"<text x='{x(start) + 2:.1f}' y='62' font-size='9' fill='#445'>flow</text>")
    checks_from = outcome if outcome is not None else first("connection before close")
    if checks_from is not None:
        parts.append(f"<rect class=phase-checks x='{x(checks_from):.1f}' y='45' width='{max(x(wall) - x(checks_from), 1):.1f}' "
                     f"height='6' fill='#a7c7a0'><title>checks {checks_from:.2f}s to {wall:.2f}s</title></rect>")
        parts.append(f"<text x='{min(x(checks_from) + 2, W - 40):.1f}' y='62' font-size='9' fill='#353'>checks</text>")
    for ev in events:  # agent events as small ticks (connection state changes, checkpoints)
        if ev["source"] == "agent" and ev["what"] in ("conn", "checkpoint", "received"):
            label = ev["what"] + (f" {ev.get('state') or ev.get('name') or ''}".rstrip())
            parts.append(f"<line x1='{x(ev['t']):.1f}' x2='{x(ev['t']):.1f}' y1='56' y2='60' stroke='#889'>"
                         f"<title>{e(label)} @ {ev['t']:.3f}s</title></line>")
    row = 0
    last_x = -100.0
    for ev in events:
        mark = MARKS.get(ev["what"]) if ev["source"] == "runner" else None
        if mark is None:
            continue
        label, colour = mark
        px = x(ev["t"])
        row = row + 1 if px - last_x < 60 else 0  # stagger labels that would overlap
        last_x = px
        y = 9 + (row % 3) * 9
        anchor = "end" if px > W - 60 else "start"
        parts.append(f"<g class='mark mark-{label}'><line x1='{px:.1f}' x2='{px:.1f}' y1='{y + 2}' y2='66' stroke='{colour}' "
                     f"stroke-width='1.5'/><text x='{px + (2 if anchor == 'start' else -2):.1f}' y='{y}' font-size='10' "
                     f"text-anchor='{anchor}' fill='{colour}'>{label}</text><title>{e(ev['what'])} @ {ev['t']:.3f}s</title></g>")
    for i in range(0, 5):  # a time axis: five ticks
        t = wall * i / 4
        parts.append(f"<text x='{x(t):.1f}' y='78' font-size='9' fill='#777' text-anchor='{'start' if i == 0 else 'end' if i == 4 else 'middle'}'>"
                     f"{t:.1f}s</text>")
    parts.append("</svg>")
    return "".join(parts)
