#!/usr/bin/env python3
"""Run a command as a child subreaper: reap every orphan below it, forward TERM/INT to it.

Why: podman starts one `conmon` per container with a double fork, so conmon is re-parented
to the nearest subreaper, normally PID 1. In minimal VMs and CI containers PID 1 is not a
real init and never reaps, so every container that ends leaves a `[conmon] <defunct>`
behind. Run as `podman-reaper.py podman system service ...`, the conmons become our
children instead and are reaped as they exit. Exits with the command's status.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: podman-reaper.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    child = os.fork()
    if child == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    status = 0
    while True:
        try:
            pid, wstatus = os.wait()
        except ChildProcessError:
            return status
        except InterruptedError:
            continue
        if pid == child:
            status = os.waitstatus_to_exitcode(wstatus)
            status = status if status >= 0 else 128 - status
            # Orphans still running (containers not removed) keep their conmon; do not wait
            # for them: they are re-parented to PID 1 as before. Reap what has ended already.
            while True:
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
            return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
