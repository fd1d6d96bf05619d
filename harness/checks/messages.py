"""Message accounting: what the client handed over is whole; what it confirmed is on the server."""

from __future__ import annotations

from typing import Any

from harness.checks import AFTER_FLOW, Finding, Sources, check, step


def find_integrity(outcome: dict[str, Any] | None) -> list[Finding]:
    """A flow that raised IntegrityError was handed wrong data without an error."""
    if outcome and outcome.get("status") == "error" and outcome.get("exc_type", "").endswith(".IntegrityError"):
        return [Finding("messages", f"wrong data handed to the flow: {outcome.get('message', '')}", evidence=str(outcome))]
    return []


def find_unconfirmed_acks(outcome: dict[str, Any] | None, consumer: dict[str, Any] | None) -> list[Finding]:
    """ack_sync returned for every message, yet the server still counts some as unacknowledged."""
    if not outcome or outcome.get("status") != "ok" or consumer is None:
        return []
    confirmed = (outcome.get("result") or {}).get("confirmed", 0)
    if confirmed and consumer["num_ack_pending"]:
        return [
            Finding(
                "messages",
                f"ack_sync confirmed {confirmed} message(s) but the server has {consumer['num_ack_pending']} ack-pending",
                evidence=", ".join(f"{k}={v}" for k, v in consumer.items()),
            )
        ]
    return []


def find_gave_up(outcome: dict[str, Any] | None, consumer: dict[str, Any] | None) -> list[Finding]:
    """The flow reached its own deadline without every message (FlowGaveUp): what never arrived.

    Evidence is the server's view of the flow's consumer (pending, ack-pending, redelivered),
    which tells a message the client lost from one the server has not sent again yet.
    """
    if not outcome or outcome.get("status") != "error" or not outcome.get("exc_type", "").endswith(".FlowGaveUp"):
        return []
    server = ", ".join(f"{k}={v}" for k, v in consumer.items()) if consumer else "(no durable consumer to ask)"
    return [Finding("messages", f"the flow {outcome.get('message', 'gave up')}", evidence=f"consumer on the server: {server}")]


check("messages", "data handed to the flow is whole, every message arrived, and acks the client confirmed are on the server")


@step("messages", AFTER_FLOW, needs=("outcome", "observer"))
def after_flow(s: Sources) -> list[Finding]:
    """Judge the flow's outcome against the server's view of its consumer."""
    consumer = s.consumers().get(s.consumer_name)  # the server's view, as evidence
    return find_integrity(s.outcome) + find_gave_up(s.outcome, consumer) + find_unconfirmed_acks(s.outcome, consumer)
