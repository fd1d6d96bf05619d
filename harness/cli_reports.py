"""`harness report`, `harness diff` and `harness gate`: the commands that read journals
(registered into harness.cli). The decisions live in `harness.gate` and `harness.diff`;
this module only parses arguments, runs and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli import command
from harness.errors import EXIT_CLEAN
from harness.journal import read_journal


@command("report")
def _register_report(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("report", help="rebuild every output of a run from its journal (a killed run too)")
    p.add_argument("journal", metavar="RUN_DIR_OR_JOURNAL", help="reports/<run-id>, its journal.jsonl or journal.json")
    p.add_argument("--out", metavar="DIR", help="write the outputs here (default: next to the journal)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import OUTPUTS, write_outputs

    j = read_journal(args.journal)
    out_dir = Path(args.out) if args.out else j.run_dir
    write_outputs(j, run_dir=out_dir, junit="if-missing" if j.complete else "always")
    c = j.counts()
    state = "complete" if j.complete else "partial (no end line: the run was killed or is still running)"
    print(f"{j.path}: {len(j.records)} scenario(s), {state}")
    print("  " + " ".join(f"{v}={n}" for v, n in c.items()))
    if j.damaged_lines:
        print(f"  {j.damaged_lines} damaged line(s) skipped (a write cut short by the kill)")
    print(f"wrote {', '.join(OUTPUTS)} in {out_dir}")
    return EXIT_CLEAN
