"""Entry point of `make bench`: run every `bench/*_bench.py` and print its figures.

Each area has its own module (`env_bench.py`, later `engine_bench.py`, ...) exposing
`run() -> list[str]`: the lines to print, measured value beside its target. Benchmarks
report; they never pass or fail on timing. Exit status 2 only if a benchmark could not
run at all (the harness's own errors, e.g. a missing binary).

    .venv/bin/python bench/run.py            # every area
    .venv/bin/python bench/run.py env        # only bench/env_bench.py
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

from harness.errors import EXIT_CLEAN, EXIT_USAGE, HarnessError

BENCH_DIR = Path(__file__).resolve().parent
SUFFIX = "_bench.py"


def discover(names: list[str] | None = None) -> list[Path]:
    """The bench modules, sorted; only the named areas (`env` for env_bench.py) if given."""
    found = sorted(BENCH_DIR.glob(f"*{SUFFIX}"))
    if not names:
        return found
    by_area = {p.name.removesuffix(SUFFIX): p for p in found}
    unknown = [n for n in names if n not in by_area]
    if unknown:
        raise HarnessError(
            f"unknown bench area {', '.join(unknown)}", hint=f"one of: {', '.join(by_area) or '(none)'}"
        )
    return [by_area[n] for n in names]


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not callable(getattr(mod, "run", None)):
        raise HarnessError(f"{path.name} has no run() -> list[str]", hint="every *_bench.py exposes run()")
    return mod


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("areas", nargs="*", help="areas to run (default: all), e.g. env")
    args = parser.parse_args(argv)
    try:
        for path in discover(args.areas):
            area = path.name.removesuffix(SUFFIX)
            print(f"== {area} ({path.name}) ==", flush=True)
            t0 = time.perf_counter()
            for line in load(path).run():
                print(line, flush=True)
            print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    except HarnessError as err:
        print(str(err), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main())
