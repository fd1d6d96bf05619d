"""Reports: every output of a run, built from its journal.

`write_outputs(journal)` writes, next to the journal: `journal.json` (the whole run in one
document), `summary.md` (also appended to `$GITHUB_STEP_SUMMARY` when asked),
`report.html`, and `junit.xml` when pytest did not write one (a killed run). The plugin
calls it at the end of a run and `harness report` calls it on any journal, so the two
always build the same thing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from xml.sax.saxutils import escape, quoteattr

from harness.journal import SYMBOL, Journal, point_latest, write_document
from harness.report_html import render as render_html

if TYPE_CHECKING:
    from harness.gate import GateResult

OUTPUTS = ("journal.json", "summary.md", "report.html", "junit.xml")


def write_outputs(journal: Journal, *, run_dir: Path | None = None, step_summary: bool = False,
                  update_latest: bool = False, junit: str = "if-missing", gate: GateResult | None = None) -> Path:
    """Write every output of the run into `run_dir` (default: the journal's); return journal.json.

    `junit`: "if-missing" keeps the richer file pytest wrote; "always" rewrites it.
    `gate`: the known-issue verdicts (known/new/flaky) shown beside each scenario.
    """
    run_dir = run_dir or journal.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    out = write_document(journal, run_dir)
    md = markdown_summary(journal, gate)
    (run_dir / "summary.md").write_text(md)
    (run_dir / "report.html").write_text(render_html(journal, gate, out_dir=run_dir))
    if junit == "always" or not (run_dir / "junit.xml").exists():
        (run_dir / "junit.xml").write_text(junit_xml(journal))
    if update_latest:
        point_latest(run_dir)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary and summary_file:
        with open(summary_file, "a") as f:
            f.write(md)
    return out


def target_line(header: Mapping[str, Any]) -> str:
    """The system under test in one line (the target of issue 8's header, else the versions)."""
    if header.get("target_id"):
        return str(header["target_id"])
    t = header.get("target")
    if isinstance(t, Mapping) and t.get("client"):
        c, s = t.get("client", {}), t.get("server", {})
        client = f"{c.get('impl', '?')} {c.get('version', '?')}" + (f" ({c['source']})" if c.get("source") else "")
        server = f"nats-server {s.get('version', '?')}" + (f" ({s['source']})" if s.get("source") else "")
        return f"{client} · {server}"
    return f"nats-py {header.get('nats_py', '?')} · nats-server {header.get('nats_server', '?')}"


def markdown_summary(journal: Journal, gate: GateResult | None = None) -> str:
    header = journal.header
    records = sorted(journal.records, key=lambda r: r["id"])
    counts = journal.counts()
    lines = [
        f"# nats-chaos run {header.get('run_id', '')}",
        "",
        f"{target_line(header)} · seed `{header.get('seed')}` · backend `{header.get('backend')}` · "
        f"toxiproxy `{header.get('toxiproxy')}`",
        "",
        " · ".join(f"{v}: {counts.get(v, 0)}" for v in ("passed", "failed", "inconclusive", "error", "not_applicable")),
        "",
    ]
    if not journal.complete:
        lines += [f"**Partial run**: the journal has no end line (killed or still running); "
                  f"{len(records)} finished scenario(s) recorded.", ""]
    for ev in journal.infra:
        lines += [f"- infrastructure: {ev.get('summary', ev)}"]
    if journal.infra:
        lines.append("")
    decisions = gate.by_id() if gate is not None else {}
    lines += ["| scenario | verdict | known issue | findings | wall s | overhead s |", "|---|---|---|---|---|---|"]
    for r in records:
        first = r["findings"][0]["summary"] if r["findings"] else r.get("reason", "")
        more = f" (+{len(r['findings']) - 1})" if len(r["findings"]) > 1 else ""
        d = decisions.get(r["id"])
        known = "" if d is None or d.status == "passed" else f"{d.status} {' '.join(d.issues)}".strip()
        lines.append(
            f"| `{r['id']}` | {SYMBOL[r['verdict']]} | {known} | {first.replace('|', '/')}{more} | "
            f"{r['timings']['wall']:.2f} | {r['timings']['overhead']:.3f} |"
        )
    replays = [r for r in records if r.get("replay")]
    if replays:
        lines += ["", "Replay a scenario:", ""] + [f"    {r['replay']}" for r in replays]
    return "\n".join(lines) + "\n"


def junit_xml(journal: Journal) -> str:
    """A JUnit file from the records (for a killed run, whose pytest never wrote one)."""
    records = sorted(journal.records, key=lambda r: r["id"])
    c = journal.counts()
    total = sum(r["timings"]["wall"] for r in records)
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           f'<testsuites><testsuite name="nats-chaos" tests="{len(records)}" failures="{c["failed"] + c["inconclusive"]}" '
           f'errors="{c["error"]}" time="{total:.3f}">']
    for r in records:
        out.append(f'<testcase classname="nats-chaos" name={quoteattr(r["id"])} time="{r["timings"]["wall"]:.3f}">')
        text = "\n".join(f"[{f['check']}] {f['summary']}\n{f['evidence']}" for f in r["findings"])
        if r["verdict"] in ("failed", "inconclusive"):
            out.append(f'<failure message={quoteattr(r["verdict"] + ": " + r.get("reason", ""))}>{escape(text)}</failure>')
        elif r["verdict"] == "error":
            out.append(f'<error message={quoteattr(r.get("reason", ""))}>{escape(text)}</error>')
        elif r["verdict"] == "not_applicable":
            out.append(f'<skipped message={quoteattr("not applicable: " + r.get("reason", ""))}/>')
        out.append("</testcase>")
    out.append("</testsuite></testsuites>")
    return "\n".join(out) + "\n"
