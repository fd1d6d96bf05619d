"""What each fault declares about itself: the runner reads these, never the fault's name."""

from __future__ import annotations

import pytest

from harness import faults
from harness.faults import AT_HEAL, AT_INJECT, NOT_TERMINAL, Fault, composite_terminal


def _fault(name: str, terminal: str = NOT_TERMINAL, needs_link: bool = False) -> Fault:
    noop = lambda fx: None  # noqa: E731
    return Fault(name, noop, noop, lambda fx: (True, ""), terminal=terminal, needs_link=needs_link)


@pytest.mark.parametrize("name", ["drain.sub_drain", "drain.unsubscribe", "drain.nc_drain", "drain.close"])
def test_client_drains_end_the_subscription_at_inject(name: str) -> None:
    f = faults.resolve(name)
    assert f.terminal == AT_INJECT and f.client_action == name.split(".")[1]


def test_the_servers_lame_duck_mode_is_not_a_terminal_event() -> None:
    # The client reconnects and its subscription lives on: a pending call ends by its own timeout.
    f = faults.resolve("drain.lame_duck")
    assert (f.terminal, f.closes_client, f.client_action) == (NOT_TERMINAL, False, "")


def test_only_connection_drains_close_the_client() -> None:
    closing = sorted(n for n, f in faults.FAULTS.items() if f.closes_client)
    assert closing == ["drain.close", "drain.nc_drain"]


@pytest.mark.parametrize("name", [n for n in faults.FAULTS if not n.startswith("drain.")])
def test_stalls_and_disconnects_are_not_terminal(name: str) -> None:
    assert faults.FAULTS[name].terminal == NOT_TERMINAL


def test_a_drain_under_a_stall_is_terminal_from_the_heal() -> None:
    f = faults.resolve("stall.bandwidth0+drain.nc_drain")
    assert (f.terminal, f.closes_client, f.client_action) == (AT_HEAL, True, "nc_drain")


def test_a_close_under_a_stall_is_terminal_from_the_inject() -> None:
    # close needs nothing from the link: it must return promptly, stall or not (KI-012's path).
    f = faults.resolve("stall.upstream+drain.close")
    assert (f.terminal, f.closes_client, f.client_action) == (AT_INJECT, True, "close")
    assert [p.name for p in f.parts] == ["stall.upstream", "drain.close"] and "stagger" in f.params


def test_composite_terminal_on_values() -> None:
    drain, close, stall = _fault("d", AT_INJECT, needs_link=True), _fault("c", AT_INJECT), _fault("s")
    assert composite_terminal([drain, drain]) == AT_INJECT
    assert composite_terminal([stall, drain]) == AT_HEAL
    assert composite_terminal([stall, close]) == AT_INJECT
    assert composite_terminal([stall, stall]) == NOT_TERMINAL
    assert composite_terminal([]) == NOT_TERMINAL


def test_the_catalogue_listing_shows_what_a_fault_declares() -> None:
    assert faults.declared(faults.FAULTS["drain.close"]) == " [terminal at inject; closes the client; action close]"
    assert faults.declared(faults.FAULTS["drain.sub_drain"]) == " [terminal at inject; action sub_drain (needs the link)]"
    assert faults.declared(faults.FAULTS["drain.lame_duck"]) == ""
