"""The `harness` command: the registry of its subcommands, `main`, and the signal handling they share.

The subcommands live in their own modules and register here with `@command` (see
`COMMAND_MODULES`): env (cli_env), run and list (cli_scenarios), report, diff and gate
(cli_reports), matrix and bisect (cli_targets).

Exit codes: 0 clean, 1 findings, 2 usage or environment error. Every `HarnessError` is
caught here and printed as its message (one line first, then evidence, then `Hint:`) on
stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
from typing import Callable, Iterator

from harness.errors import EXIT_CLEAN, EXIT_USAGE, HarnessError

# -- the command registry ------------------------------------------------------------
# Each top-level subcommand is a function that adds its parser to `subparsers` and sets
# `func=handler` (handler(args) -> exit code).
Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
COMMANDS: dict[str, Registrar] = {}
# Modules that register more subcommands when imported; loaded by build_parser() so that
# `import harness.cli` stays light and free of import cycles.
# env; run, list; report, diff, gate; matrix, bisect
COMMAND_MODULES: tuple[str, ...] = (
    "harness.cli_env", "harness.cli_scenarios", "harness.cli_reports", "harness.cli_targets",
)


def command(name: str) -> Callable[[Registrar], Registrar]:
    """Register a top-level subcommand: the decorated function adds its parser."""

    def deco(fn: Registrar) -> Registrar:
        COMMANDS[name] = fn
        return fn

    return deco


def build_parser() -> argparse.ArgumentParser:
    """The `harness` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Chaos test harness for NATS clients (nats-server behind Toxiproxy).",
        epilog="exit status: 0 clean, 1 findings, 2 usage or environment error",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    for register in COMMANDS.values():
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `harness` command line; returns the exit status."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "forward", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest  # a command that passes arguments on (`gate` -> `run`) sets forward=True
    try:
        return int(args.func(args))
    except HarnessError as err:
        print(str(err), file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated):
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a harness bug or an unexpected OS error: still one line, still 2, never 1
        import traceback

        print(f"harness {args.command}: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        print(traceback.format_exc().rstrip(), file=sys.stderr)
        print("Hint: this is the harness failing, not the client under test; please report it with the trace above",
              file=sys.stderr)
        return EXIT_USAGE


# -- signals -------------------------------------------------------------------------


class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM/SIGHUP so `finally` blocks tear down."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(EXIT_CLEAN)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Terminated` (SIGINT raises KeyboardInterrupt already)."""
    old = {s: signal.signal(s, _raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Let a teardown finish: a second Ctrl-C or SIGTERM must not cut it short."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


if __name__ == "__main__":
    # `python -m harness.cli` (how `up --detach` starts its child): use the module that
    # `COMMAND_MODULES` register into, not this `__main__` copy of it.
    from harness.cli import main as _main

    sys.exit(_main())
