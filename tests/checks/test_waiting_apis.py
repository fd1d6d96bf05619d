"""The waiting-API coverage table: every row is covered by registered flows or says why none
is needed; the APIs issue 17 names have flows; the listing prints every row."""

from __future__ import annotations

import subprocess
import sys

from harness.flows import FLOWS
from harness.waiting_apis import WAITING_APIS, table


def test_every_row_is_covered_by_registered_flows_or_says_why_not() -> None:
    for a in WAITING_APIS:
        assert a.flows or a.not_applicable, f"{a.what}: neither covered nor marked not applicable"
        assert not (a.flows and a.not_applicable), a.what
        for name in a.flows:
            assert name in FLOWS, f"{a.what}: no flow {name}"


def test_the_apis_the_issue_names_have_flows() -> None:
    covered = {a.what for a in WAITING_APIS if a.flows}
    for what in ("ObjectStore watch, updates, stop", "ObjectStore list", "ObjectStore info", "ObjectStore delete",
                 "KV history", "KV purge", "KV watch with replay options", "consumer info", "consumer pause, resume"):
        assert what in covered, what


def test_the_catalogue_prints_the_table() -> None:
    lines = table()
    assert len(lines) == len(WAITING_APIS) + 1
    out = subprocess.run([sys.executable, "-m", "harness", "list", "--catalogue"], capture_output=True, text=True, check=True).stdout
    assert "waiting APIs" in out and "obs.watch().updates() / stop()" in out and "objectstore.watch" in out


def test_every_go_flow_named_is_registered_by_the_go_agent() -> None:
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "harness" / "agent" / "go"
    go = set()
    for f in src.glob("*.go"):
        go |= set(re.findall(r'register\("([a-z_.]+)"', f.read_text()))
        go |= {"ack." + k for k in re.findall(r'"(ack|ack_sync|nak|nak_delay|in_progress|term)"', f.read_text())}
    for a in WAITING_APIS:
        if a.flows and not a.go_gap:
            assert a.on_go(), f"{a.what}: no nats.go flow and no gap stated"
        for name in a.on_go():
            assert name in go, f"{a.what}: the Go agent registers no {name}"
        assert not (a.go_gap and a.on_go()), a.what
