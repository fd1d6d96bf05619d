"""`harness matrix` and `harness bisect`: the same scenarios across targets (registered into harness.cli).

Both resolve (install) every target first, so a bad version or path is one line and exit 2
before anything runs; each cell or step is then an ordinary `harness run` in a process of
its own, with one seed for all of them.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import sys
from pathlib import Path

from harness import bisect as bis
from harness import matrix as mx
from harness.cli import command
from harness.errors import EXIT_CLEAN
from harness.scenario import resolve_seed
from harness.targets import implementation, parse_client
from harness.targets.resolve import resolve_target


def _run_args(args: argparse.Namespace, seed: int) -> list[str]:
    out = [*args.paths, "--seed", str(seed)]
    if args.keyword:
        out += ["-k", args.keyword]
    if args.env:
        out += ["--env", args.env]
    if getattr(args, "workers", None):
        out += ["-n", str(args.workers)]
    return out


def _out_dir(args: argparse.Namespace, kind: str) -> Path:
    """A directory of this matrix (bisect) alone, even when another starts in the same second."""
    from harness.journal import claim_run_dir

    reports = Path(args.reports or "reports").resolve()
    return reports / claim_run_dir(reports, f"{kind}-{datetime.datetime.now():%Y%m%d-%H%M%S}")


@command("matrix")
def _register_matrix(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("matrix", help="run the scenarios against several targets; one scenario x target comparison")
    p.add_argument("paths", nargs="*", help="scenario files or node ids (default: scenarios/)")
    p.add_argument("--client", action="append", default=[], help="client target (repeatable; the first is the baseline)")
    p.add_argument("--server", action="append", default=[], help="nats-server target (repeatable)")
    p.add_argument("-k", dest="keyword", help="select scenarios by pytest -k expression")
    p.add_argument("--seed", type=int, help="one seed for every cell (random if unset)")
    p.add_argument("--env", choices=("local", "compose"), default=None)
    p.add_argument("-n", dest="workers", help="pytest-xdist workers inside each cell")
    p.add_argument("-j", "--jobs", type=int, default=None, help="cells at once (default: one per core)")
    p.add_argument("--reports", default=None, help="reports directory (default reports/)")
    p.set_defaults(func=cmd_matrix)


def cmd_matrix(args: argparse.Namespace) -> int:
    seed, _ = resolve_seed(args.seed, "--seed")
    clients = args.client or [None]
    servers = args.server or [None]
    if len(clients) * len(servers) < 2:
        print("harness matrix: needs at least two targets\nHint: pass --client twice, or --server twice", file=sys.stderr)
        return 2
    cells = []
    for c, s in itertools.product(clients, servers):
        t = resolve_target(c, s)  # installs; TargetError -> one line, exit 2
        cells.append((t.client.spec, s, t.label))
    out = _out_dir(args, "matrix")
    jobs = args.jobs or mx.default_jobs(len(cells))
    print(f"nats-chaos matrix: {len(cells)} targets, seed {seed}, {jobs} at once, reports {out}", flush=True)
    runs, cmp = mx.run_matrix(cells, _run_args(args, seed), out, jobs, progress=lambda m: print(m, flush=True))
    md = mx.render_markdown(cmp, f"nats-chaos matrix (seed {seed})")
    (out / "matrix.md").write_text(md)
    (out / "matrix.json").write_text(json.dumps({
        "seed": seed,
        "targets": [{"label": r.label, "client": r.client, "server": r.server, "exit": r.exit,
                     "journal": str(r.journal) if r.journal else None, "wall": round(r.wall, 1)} for r in runs],
        "cells": [{"scenario": s, "target": t, **vars(c)} for (s, t), c in sorted(cmp.cells.items())],
    }, indent=2))
    print(md)
    print(f"matrix: {out / 'matrix.md'}")
    return mx.exit_status([r.exit for r in runs], cmp)


@command("bisect")
def _register_bisect(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("bisect", help="find the first client release in which a scenario's verdict turns")
    p.add_argument("scenario", help="scenario id, e.g. 'objectstore.get[drain.close@transfer]'")
    p.add_argument("--client", required=True, help="client implementation, e.g. nats-py")
    p.add_argument("--good", required=True, help="a release with one verdict")
    p.add_argument("--bad", required=True, help="a release with another")
    p.add_argument("--server", default=None, help="nats-server target for every step")
    p.add_argument("--seed", type=int, help="one seed for every step")
    p.add_argument("--env", choices=("local", "compose"), default=None)
    p.add_argument("--paths", nargs="*", default=["scenarios"], help="where the scenario is defined (default scenarios/)")
    p.add_argument("--reports", default=None, help="reports directory (default reports/)")
    p.set_defaults(func=cmd_bisect)


def cmd_bisect(args: argparse.Namespace) -> int:
    seed, _ = resolve_seed(args.seed, "--seed")
    impl = implementation(parse_client(args.client.split("==")[0].split("@")[0]).impl)
    node = _node_id(args.scenario, args.paths)
    versions = bis.between(impl.published_versions(), args.good, args.bad, impl.version_key, getattr(impl, "exists", None))
    out = _out_dir(args, "bisect")
    print(f"nats-chaos bisect: {args.scenario} on {impl.name}, {len(versions)} releases from {versions[0]} to "
          f"{versions[-1]} (at most {max(len(versions) - 1, 1).bit_length() + 2} runs), seed {seed}, reports {out}", flush=True)

    def verdict_of(version: str) -> bis.Step:
        spec = f"{impl.name}=={version}"
        resolve_target(spec, args.server)
        cell = out / version
        cell.mkdir(parents=True, exist_ok=True)
        run_args = [node, "--seed", str(seed)] + (["--env", args.env] if args.env else [])
        r = mx.run_cell(spec, args.server, spec, cell, run_args, cell / "run.log")
        step = bis.step_from_journal(version, r.journal, args.scenario)
        print(f"  {version:>10}  {step.verdict:<14} {step.line[:100]}", flush=True)
        return step

    res = bis.bisect(versions, verdict_of)
    print(f"\nfirst release where the verdict turns: {impl.name} {res.first_turned.version} "
          f"({res.last_same.verdict} on {res.last_same.version} -> {res.first_turned.verdict})")
    print(f"  {res.last_same.version}: {res.last_same.journal}")
    print(f"  {res.first_turned.version}: {res.first_turned.journal}")
    (out / "bisect.json").write_text(json.dumps({"scenario": args.scenario, "seed": seed, "versions": versions,
                                                 "steps": [vars(s) for s in res.steps],
                                                 "first_turned": vars(res.first_turned), "last_same": vars(res.last_same)},
                                                indent=2))
    return EXIT_CLEAN  # found; no turn between the ends is a BisectError (exit 2)


def _node_id(scenario_id: str, paths: list[str]) -> str:
    """`file::id` for a scenario id (an unknown id is a usage error)."""
    from harness.scenario import load_file

    for p in map(Path, paths):
        for f in (sorted(p.glob("*.y*ml")) if p.is_dir() else [p]):
            if any(sc.id == scenario_id for sc in load_file(f)):
                return f"{f}::{scenario_id}"
    raise bis.BisectError(f"no scenario {scenario_id!r} in {', '.join(paths)}", hint="`harness list` shows the scenario ids")
