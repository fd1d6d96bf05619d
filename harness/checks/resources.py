"""Resources the client kept after close: file descriptors in its process, its connection
on the server.

After `nc.close()` the agent process must hold no more file descriptors than it did
before the client connected. The agent itself opens none per scenario (measured: the
count after close is the count before connect on every reference scenario), so one
more is the client's: typically a transport socket a reconnect or a close forgot.
"""

from __future__ import annotations

from harness.checks import AFTER_CLOSE, Finding, Sources, check, step


def find_leftover_fds(before: dict[int, str], after: dict[int, str], phase: str) -> list[Finding]:
    """Descriptors open in `after` beyond the count in `before` ({fd: target})."""
    if len(after) <= len(before):
        return []
    # Name the new ones: fds not open before, or reused numbers now pointing elsewhere.
    new = {fd: t for fd, t in after.items() if before.get(fd) != t}
    extra = len(after) - len(before)
    shown = ", ".join(f"{fd} -> {t}" for fd, t in sorted(new.items())) or "(reused numbers)"
    return [
        Finding(
            "resources",
            f"{extra} file descriptor(s) left open ({phase}): {len(before)} before connect, {len(after)} now",
            evidence=f"new or changed descriptors: {shown}",
        )
    ]


def find_connection_left(cid: int, record: dict | None, phase: str) -> list[Finding]:
    """The server still lists the client's connection `cid` (from `/connz`) after the client closed it."""
    if record is None:
        return []
    keep = ("cid", "name", "ip", "port", "start", "last_activity", "idle", "pending_bytes", "in_msgs", "out_msgs",
            "subscriptions", "subscriptions_list")
    return [
        Finding(
            "resources",
            f"the server still lists the client's connection cid {cid} ({phase})",
            evidence=", ".join(f"{k}={record[k]}" for k in keep if k in record),
        )
    ]


check("resources", "file descriptors left open, and the connection still listed by the server's /connz, after close")


@step("resources", AFTER_CLOSE, needs=("fds", "observer"))
def after_close(s: Sources) -> list[Finding]:
    """Settled: a closed transport releases its socket on the next loop turn."""
    before = dict(s.baseline.fds)
    out = s.settled(lambda: find_leftover_fds(before, s.fds(), AFTER_CLOSE))
    cid = s.cid
    if cid is not None:
        out += s.settled(lambda: find_connection_left(cid, s.connection(cid), AFTER_CLOSE))
    return out
