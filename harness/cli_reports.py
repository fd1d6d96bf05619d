"""`harness report`, `harness diff` and `harness gate`: the commands that read journals
(registered into harness.cli). The decisions live in `harness.gate` and `harness.diff`;
this module only parses arguments, runs and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from harness.cli import command
from harness.errors import EXIT_CLEAN, HarnessError
from harness.journal import Journal, read_journal
from harness.known_issues import DEFAULT_PATH as DEFAULT_KNOWN
from harness.known_issues import EMPTY, KnownIssues, load_known_issues

if TYPE_CHECKING:
    from harness.gate import GateResult


class UsageError(HarnessError):
    """A command line the gate cannot use."""


@command("report")
def _register_report(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("report", help="rebuild every output of a run from its journal (a killed run too)")
    p.add_argument("journal", metavar="RUN_DIR_OR_JOURNAL", help="reports/<run-id>, its journal.jsonl or journal.json")
    p.add_argument("--out", metavar="DIR", help="write the outputs here (default: next to the journal)")
    _known_issues_option(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import OUTPUTS, write_outputs

    from harness.gate import decide, markdown
    from harness.reruns import find_reruns

    known = load_known(args.known_issues)
    j = read_journal(args.journal)
    out_dir = Path(args.out) if args.out else j.run_dir
    reruns = find_reruns(j.run_dir)
    result = decide((j, *reruns), known)
    write_outputs(j, run_dir=out_dir, junit="if-missing" if j.complete else "always", gate=result)
    if reruns or (j.run_dir / "gate.md").exists():  # a gate's run: its verdict is an output too
        write_gate_outputs(j, reruns, result, markdown(result, run_id=j.run_dir.name, journal_path=str(j.path)),
                           run_dir=out_dir)
    c = j.counts()
    state = "complete" if j.complete else "partial (no end line: the run was killed or is still running)"
    print(f"{j.path}: {len(j.records)} scenario(s), {state}")
    print("  " + " ".join(f"{v}={n}" for v, n in c.items()))
    if j.damaged_lines:
        print(f"  {j.damaged_lines} damaged line(s) skipped (a write cut short by the kill)")
    print(f"wrote {', '.join(OUTPUTS)} in {out_dir}")
    return EXIT_CLEAN


def _known_issues_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--known-issues", metavar="FILE", default=None,
                   help=f"known issues (default: {DEFAULT_KNOWN} if it exists)")


def load_known(path: str | None) -> KnownIssues:
    """The known issues named on the command line, else the default file if present, else none."""
    if path is not None:
        return load_known_issues(path)
    return load_known_issues(DEFAULT_KNOWN) if DEFAULT_KNOWN.exists() else EMPTY


@command("gate")
def _register_gate(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "gate", help="pre-release gate: run, rerun what did not pass, fail on new/stale/flaky/error/inconclusive",
        description="Every argument the gate does not know (paths, -k, -n, --env, target options) goes to "
        "`harness run` untouched.",
    )
    _known_issues_option(p)
    p.add_argument("--reruns", type=int, default=2, metavar="N", help="reruns of each non-passing scenario (default 2)")
    p.add_argument("--seed", type=int, help="run seed (reruns use the same)")
    p.add_argument("--reports", default=None, help="reports directory (default reports/)")
    p.set_defaults(func=cmd_gate, forward=True)


def _run_parser() -> argparse.ArgumentParser:
    from harness.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["run"]
    raise RuntimeError("no `run` command registered")


def split_run_args(rest: list[str]) -> tuple[list[str], list[str]]:
    """(args for the first run, args for the reruns): reruns name node ids instead of the paths."""
    ns, unknown = _run_parser().parse_known_args(rest)
    if unknown:
        raise UsageError(f"harness gate: unknown argument(s) for harness run: {' '.join(unknown)}",
                         hint="`harness run --help` lists what the gate passes on")
    rerun = list(rest)
    for path in ns.paths:
        rerun.remove(path)
    return rest, rerun


def cmd_gate(args: argparse.Namespace) -> int:
    import os
    import time

    from harness.gate import decide, markdown
    from harness.reruns import run_gate
    from harness.scenario import resolve_seed

    t0 = time.monotonic()
    known = load_known(args.known_issues)  # a malformed file stops the gate before anything runs
    if args.reruns < 0:
        raise UsageError(f"harness gate: --reruns must be >= 0, got {args.reruns}")
    run_args, rerun_args = split_run_args(args.rest)
    try:
        seed, _ = resolve_seed(args.seed, "--seed")
    except ValueError as e:
        raise UsageError(f"harness gate: invalid {e}") from None
    reports = Path(args.reports or os.environ.get("NATS_CHAOS_REPORTS") or "reports").resolve()
    runs = run_gate(run_args, rerun_args, seed=seed, reports=reports, reruns=args.reruns)
    result = decide(runs.journals, known)
    md = markdown(result, run_id=runs.run_dir.name, journal_path=str(runs.first.path))
    write_gate_outputs(runs.first, runs.reruns, result, md)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a") as f:
            f.write(md)
    print()
    print(md, end="")
    wall = time.monotonic() - t0
    print(f"gate: {wall:.1f}s, of which {runs.run_seconds:.1f}s in harness run; gate overhead "
          f"{wall - runs.run_seconds:.2f}s ({(wall - runs.run_seconds) / max(runs.run_seconds, 1e-9) * 100:.1f} %)")
    print(f"gate: {'PASSED' if result.passed else 'FAILED'}; {runs.run_dir / 'gate.md'}")
    return result.exit_status()


def write_gate_outputs(first: Journal, reruns: tuple[Journal, ...], result: GateResult, md: str,
                       run_dir: Path | None = None) -> None:
    """gate.md and gate.json next to the first run's journal; its report rebuilt with the verdicts."""
    import dataclasses
    import json

    from harness.report import write_outputs

    run_dir = run_dir or first.run_dir
    (run_dir / "gate.md").write_text(md)
    doc = {"passed": result.passed, "exit_status": result.exit_status(), "target": str(result.target),
           "attempts": result.attempts, "scenarios": [dataclasses.asdict(d) for d in result.scenarios],
           "issues": [dataclasses.asdict(i) for i in result.issues]}
    (run_dir / "gate.json").write_text(json.dumps(doc, indent=2))
    write_outputs(first, run_dir=run_dir, gate=result)


@command("diff")
def _register_diff(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("diff", help="compare two runs: new failures, changed findings, fixed (exit 1 if worse)")
    p.add_argument("old", metavar="OLD", help="the baseline run (directory or journal)")
    p.add_argument("new", metavar="NEW", help="the run to judge (directory or journal)")
    p.add_argument("--out", metavar="FILE", help="also write the comparison (Markdown) here")
    p.set_defaults(func=cmd_diff)


def cmd_diff(args: argparse.Namespace) -> int:
    import os

    from harness.diff import diff, markdown

    old, new = read_journal(args.old), read_journal(args.new)
    d = diff(old, new)
    md = markdown(d, old_name=f"OLD ({old.header.get('run_id', args.old)})", new_name=f"NEW ({new.header.get('run_id', args.new)})")
    for j, name in ((old, "OLD"), (new, "NEW")):
        if not j.complete:
            md += f"\nNote: {name} is a partial run ({len(j.records)} scenarios recorded).\n"
    print(md, end="")
    if args.out:
        Path(args.out).write_text(md)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a") as f:
            f.write(md)
    return d.exit_status()
