"""`harness run` and `harness list`: the scenario commands (registered into harness.cli).

`harness run` is pytest with the nats-chaos plugin: selection (-k, node ids), -x, --lf,
-n (xdist) and JUnit come from pytest. Exit status: 0 all passed, 1 any failed or
inconclusive, 2 usage or environment error (including a scenario whose verdict is `error`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
from pathlib import Path

from harness.cli import command
from harness.errors import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE
from harness.journal import claim_run_dir
from harness.scenario import load_paths, resolve_seed
from harness.targets.resolve import resolve_target, target_slug

DEFAULT_PATHS = ["scenarios"]


def _pytest_exit(code: int) -> int:
    """pytest's exit codes -> the harness's: 0 clean, 1 findings, 2 usage/environment."""
    if code == 0:
        return EXIT_CLEAN
    if code == 1:
        return EXIT_FINDINGS
    if code == 5:
        print("harness run: no scenario selected\nHint: `harness list` shows the scenario ids; check -k and the paths",
              file=sys.stderr)
    return EXIT_USAGE


@command("run")
def _register_run(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("run", help="run scenarios (pytest with the nats-chaos plugin)")
    p.add_argument("paths", nargs="*", help="scenario files, directories or pytest node ids (default: scenarios/)")
    p.add_argument("-k", dest="keyword", help="select scenarios by pytest -k expression")
    p.add_argument("-m", dest="markers", help="select scenarios by their entries' tags (pytest -m), e.g. quick")
    p.add_argument("--seed", type=int, help="run seed; a replay uses the seed printed in the header")
    p.add_argument("-n", dest="workers", help="scenarios in flight (pytest-xdist workers, each with its own environment): "
                        "auto = chosen from the machine (cores, memory, fds, ports); 0 = in-process")
    p.add_argument("--env", choices=("local", "compose"), default=None, help="environment backend (default local)")
    p.add_argument("--cluster", type=int, choices=(1, 3), default=None, metavar="N",
                   help="run every scenario on an N-node JetStream cluster (3), or on one server (1); "
                        "default: each scenario's own `cluster:`")
    p.add_argument("--flows", action="append", default=[], help="module registering user flows (repeatable)")
    p.add_argument("--soak", type=float, metavar="SECONDS",
                   help="run each soak scenario (one with `rounds:`) for SECONDS instead of its rounds")
    p.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first non-passing scenario")
    p.add_argument("--lf", action="store_true", help="rerun only the scenarios that did not pass last time")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--reports", default=None, help="reports directory (default reports/)")
    p.add_argument("--run-id", default=None, help="name of the run directory (default: <date>-<time>-<seed>)")
    p.add_argument("--known-issues", default=None, metavar="FILE",
                   help="known issues marking findings known/new in the report (default: known_issues/known_issues.yaml if present)")
    add_target_options(p)
    p.set_defaults(func=cmd_run)


def add_target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--client", default=None,
                   help="client under test: IMPL, IMPL==VERSION (nats-py==2.8.0) or IMPL@PATH (checkout or wheel); "
                        "default $NATS_CHAOS_CLIENT, else nats-py's pinned release")
    p.add_argument("--server", default=None,
                   help="nats-server under test: VERSION (2.10.26) or PATH to a binary; default $NATS_CHAOS_SERVER, "
                        "else the one `make setup` installed")


def target_specs(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The client and server specs: option > environment (the plugin adds ini)."""
    return (args.client or os.environ.get("NATS_CHAOS_CLIENT") or None,
            args.server or os.environ.get("NATS_CHAOS_SERVER") or None)


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    try:
        seed, source = resolve_seed(args.seed, "--seed")
    except ValueError as e:
        print(f"harness run: invalid {e}", file=sys.stderr)
        return EXIT_USAGE
    # Absolute, so the journal and junit.xml land together whatever pytest picks as rootdir.
    reports = Path(args.reports or os.environ.get("NATS_CHAOS_REPORTS") or "reports").resolve()
    # The target is installed here, before pytest starts: a bad version or path is one line
    # and exit 2 (a HarnessError), and every worker then finds it ready in the cache.
    client_spec, server_spec = target_specs(args)
    target = resolve_target(client_spec, server_spec)
    # Claimed (created) here, so two runs started in the same second with the same seed and
    # target never write into one directory: the second gets `<id>-2`.
    run_id = args.run_id or claim_run_dir(
        reports, datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{seed}-{target_slug(client_spec, server_spec)}")
    os.environ["NATS_CHAOS_RUN_ID"] = run_id
    argv = [*(args.paths or DEFAULT_PATHS), f"--chaos-seed={seed}", "-p", "no:randomly", "-rfE"]
    argv += [f"--chaos-reports={reports}", f"--junitxml={reports / run_id / 'junit.xml'}"]
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.markers:
        argv += ["-m", args.markers]
    schedule = ""
    if args.workers == "auto":  # resolved here, so the header says what the run chose and why
        from harness.schedule import choose_workers, machine, may_start_clusters

        # Named scenarios (a replay, the gate's reruns): no more workers than scenarios.
        named = len(args.paths) if args.paths and all("::" in p for p in args.paths) else None
        conc = choose_workers(machine(), scenarios=named, clusters=may_start_clusters(args.cluster, args.paths or DEFAULT_PATHS))
        schedule = f"schedule: -n auto: {conc.describe()}; longest first"
        argv += ["-n", str(conc.workers)]
    elif args.workers:
        argv += ["-n", str(args.workers)]
    if args.env:
        argv.append(f"--chaos-env={args.env}")
    if args.cluster is not None:
        argv.append(f"--cluster={args.cluster}")
    for m in args.flows:
        argv.append(f"--chaos-flows={m}")
    if args.known_issues:
        argv.append(f"--chaos-known-issues={args.known_issues}")
    if client_spec:
        argv.append(f"--client={client_spec}")
    if server_spec:
        argv.append(f"--server={server_spec}")
    if args.soak is not None:
        argv.append(f"--chaos-soak={args.soak}")
    if args.exitfirst:
        argv.append("-x")
    if args.lf:
        argv.append("--lf")
    argv += ["-v"] * args.verbose if args.verbose else ["-q"]
    # -q hides pytest's header: the seed is what a replay needs, so it is always the first line.
    print(f"nats-chaos: seed {seed} ({source}), run {run_id}, reports {reports / run_id}", flush=True)
    if schedule:
        print(schedule, flush=True)
    print(f"target: {target.label}", flush=True)
    try:
        return _pytest_exit(int(pytest.main(argv)))
    finally:
        with contextlib.suppress(OSError):
            (reports / run_id).rmdir()  # only if the run wrote nothing (it ended before its header)


@command("list")
def _register_list(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("list", help="print the expanded scenario ids (validates the files)")
    p.add_argument("paths", nargs="*", help="scenario files or directories (default: scenarios/)")
    p.add_argument("--flows", action="append", default=[], help="module registering user flows (repeatable)")
    p.add_argument("--catalogue", action="store_true", help="also list the known flows, faults, triggers and checks")
    p.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from harness.flows import FlowModuleError, load_flow_modules

    try:
        load_flow_modules(tuple(args.flows))
    except FlowModuleError as e:
        print(f"harness list: {e}", file=sys.stderr)
        return EXIT_USAGE
    scenarios = load_paths(args.paths or DEFAULT_PATHS)
    for sc in scenarios:
        print(f"{sc.source.rsplit(':', 1)[0]}::{sc.id}")
    print(f"{len(scenarios)} scenarios")
    if args.catalogue:
        from harness import checks, faults, flows, triggers

        print("\nflows:")
        for name, spec in sorted(flows.FLOWS.items()):
            print(f"  {name:28s} triggers: {', '.join(spec.triggers):22s} {spec.doc}")
        print("faults:")
        for name, f in sorted(faults.FAULTS.items()):
            print(f"  {name:28s} {f.doc}{faults.declared(f)}")
        print("triggers:\n  " + ", ".join(sorted(triggers.TRIGGERS)))
        print("checks:")
        for name, c in checks.CHECKS.items():
            phases = ", ".join(dict.fromkeys(s.phase for s in c.steps))
            print(f"  {name:14s} {c.doc} [{phases}; reads {', '.join(sorted(c.needs))}]")
        from harness.waiting_apis import table

        print("waiting APIs (calls that wait on the network, read from each client's source; harness/waiting_apis.py):")
        print("\n".join(table()))
    return EXIT_CLEAN
