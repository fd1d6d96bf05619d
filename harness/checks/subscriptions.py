"""Client subscriptions left after the flow (the flow unsubscribes in `finally`)."""

from __future__ import annotations

from harness.agent.snapshot import Snapshot, SubInfo
from harness.checks import AFTER_FLOW, Finding, Sources, check, step


def is_request_inbox(subject: str) -> bool:
    """The connection's shared request inbox (`_INBOX.<id>.*`), created by the first request."""
    return subject.startswith("_INBOX.") and subject.endswith(".*")


def ignore_request_inbox(sub: SubInfo) -> bool:
    """The connection's shared request inbox: part of the connection, not of any flow."""
    return is_request_inbox(sub.subject)


def find_leftover_subscriptions(snap: Snapshot, baseline_sids: set[int], phase: str) -> list[Finding]:
    out = []
    for s in snap.subs:
        if s.sid in baseline_sids or ignore_request_inbox(s):
            continue
        out.append(
            Finding(
                check="subscriptions",
                summary=f"subscription sid {s.sid} on {s.subject} left ({phase})",
                evidence=f"pending_msgs={s.pending_msgs} closed={s.closed} queue={s.queue!r}",
            )
        )
    return out


check("subscriptions", "client subscriptions left after the flow")


@step("subscriptions", AFTER_FLOW, needs=("snapshot",))
def after_flow(s: Sources) -> list[Finding]:
    """Subscriptions not there at baseline, settled within the leak grace."""
    return s.settled(lambda: find_leftover_subscriptions(s.snapshot(), set(s.baseline.sids), AFTER_FLOW))
