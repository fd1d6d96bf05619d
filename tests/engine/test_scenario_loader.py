"""The loader validates a whole file before anything runs; errors name file, entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.scenario import ScenarioError, load_file, load_paths

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_reference_matrix_expands_to_stable_readable_ids() -> None:
    ids = [s.id for s in load_paths([ROOT / "scenarios"])]
    assert "objectstore.get[stall.bandwidth0@transfer]" in ids
    assert "objectstore.get[none]" in ids
    assert len(ids) == len(set(ids))
    # Get, Next and ack each under stall, disconnect and drain, plus a control each (on one
    # server; on a cluster, cluster faults too)
    for flow in ("objectstore.get", "next.fetch", "next.iterate", "ack.ack_sync"):
        kinds = {s.fault.split(".")[0] for s in load_paths([ROOT / "scenarios"]) if s.flow == flow and s.cluster == 1}
        assert kinds == {"none", "stall", "disconnect", "drain"}, flow
        clustered = {s.fault.split(".")[0] for s in load_paths([ROOT / "scenarios"]) if s.flow == flow and s.cluster == 3}
        assert clustered <= {"none", "cluster"}, flow
    assert ids == [s.id for s in load_paths([ROOT / "scenarios"])]  # stable


@pytest.mark.parametrize(
    "text,entry,field,problem",
    [
        ("matrix:\n  - flows: [objectstore.get\n", "-", "-", "malformed YAML at line"),
        ("matrix:\n  - name: a\n    flows: [no.such.flow]\n", "a", "flows", "unknown flow 'no.such.flow'"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    faults: [stall.nope]\n    triggers: [waiting]\n", "a", "faults", "unknown fault"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    faults: [stall.bandwidth0]\n    triggers: [soon]\n", "a", "triggers", "unknown trigger"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    checks: [tasks, vibes]\n", "a", "checks", "unknown check 'vibes'"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    params: {count: ten}\n", "a", "params.count", "must be int, got str"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    params: {colour: 3}\n", "a", "params.colour", "unknown parameter"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    hold: soon\n", "a", "hold", "must be a number"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    faults: [stall.bandwidth0]\n", "a", "triggers", "no trigger"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    faults: [stall.bandwidth0]\n    triggers: [before_ack]\n", "a", "triggers", "does not apply"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    colour: red\n", "a", "colour", "unknown key"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n  - name: b\n    flows: [next.fetch]\n", "b", "flows", "already declared by entry a"),
        ("matrix: []\n", "-", "matrix", "non-empty list"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    faults: [stall.bandwidth0+drain.nope]\n    triggers: [waiting]\n", "a", "faults", "unknown fault 'drain.nope' in 'stall.bandwidth0+drain.nope'"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    client: {ping_interval: fast}\n", "a", "client.ping_interval", "must be float"),
        ("matrix:\n  - name: a\n    flows: [next.fetch]\n    client: {tls: true}\n", "a", "client.tls", "unknown client option"),
        ("matrix:\n  - name: a\n    variant: 'a b'\n    flows: [next.fetch]\n", "a", "variant", "short name"),
        ("matrix:\n  - name: a\n    flows: [objectstore.get]\n    faults: [disconnect.limit_data]\n    triggers: [in_call]\n"
         "    fault_params: {bytes: lots}\n", "a", "fault_params.bytes", "must be int, got str"),
        ("matrix:\n  - name: a\n    flows: [objectstore.get]\n    faults: [stall.latency]\n    triggers: [in_call]\n"
         "    fault_params: {bytes: 10}\n", "a", "fault_params.bytes", "not read by any of this entry's faults or triggers"),
        ("matrix:\n  - name: a\n    flows: [objectstore.get]\n    faults: [stall.latency]\n    triggers: [transfer]\n"
         "    fault_params: {transfer_chunks: 1.5}\n", "a", "fault_params.transfer_chunks", "must be int"),
    ],
)
def test_errors_name_file_entry_and_field(tmp_path: Path, text: str, entry: str, field: str, problem: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ScenarioError) as ei:
        load_file(p)
    e = ei.value
    first = str(e).splitlines()[0]
    assert first.startswith(f"{p}: entry {entry}: field '{field}': "), first
    assert problem in first


def test_a_bad_entry_anywhere_fails_the_whole_file(tmp_path: Path) -> None:
    p = write(tmp_path, "matrix:\n  - name: ok\n    flows: [next.fetch]\n  - name: bad\n    flows: [nope]\n")
    with pytest.raises(ScenarioError, match="entry bad"):
        load_file(p)


def test_scenario_seed_derives_from_run_seed_and_id() -> None:
    s = load_paths([ROOT / "scenarios"])
    assert s[0].seed(1) == s[0].seed(1) != s[0].seed(2)
    assert s[0].seed(1) != s[1].seed(1)


def test_variant_names_a_second_configuration_of_the_same_scenarios(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "matrix:\n  - name: a\n    flows: [ack.ack]\n    faults: [none, stall.pause]\n    triggers: [before_ack]\n"
        "  - name: b\n    variant: slow-pings\n    flows: [ack.ack]\n    faults: [stall.pause]\n    triggers: [before_ack]\n"
        "    client: {ping_interval: 120}\n",
    )
    by_id = {s.id: s for s in load_file(p)}
    assert list(by_id) == ["ack.ack[none]", "ack.ack[stall.pause@before_ack]", "ack.ack[stall.pause@before_ack~slow-pings]"]
    assert by_id["ack.ack[stall.pause@before_ack~slow-pings]"].client == {"ping_interval": 120}
    assert by_id["ack.ack[stall.pause@before_ack]"].client == {}


def test_fault_params_read_by_the_entry_s_faults_and_triggers_load(tmp_path: Path) -> None:
    p = write(tmp_path, "matrix:\n  - name: a\n    flows: [objectstore.get]\n"
                        "    faults: [stall.latency+disconnect.limit_data]\n    triggers: [transfer]\n"
                        "    fault_params: {latency: 500, bytes: 65536, transfer_chunks: 3}\n")
    (sc,) = load_file(p)
    assert dict(sc.fault_params) == {"latency": 500, "bytes": 65536, "transfer_chunks": 3}


def test_rounds_make_a_soak_without_faults(tmp_path: Path) -> None:
    p = write(tmp_path, "defaults: {rounds: 30}\nmatrix:\n  - name: s\n    flows: [soak.fetch_empty, soak.nak_delay]\n")
    got = load_file(p)
    assert [(s.id, s.rounds, s.is_soak) for s in got] == [("soak.fetch_empty[none]", 30, True), ("soak.nak_delay[none]", 30, True)]
    assert not load_file(write(tmp_path, "matrix:\n  - name: s\n    flows: [next.fetch]\n"))[0].is_soak


@pytest.mark.parametrize("rounds,problem", [(0, "from 1 to 100000"), ("many", "whole number"), (True, "whole number")])
def test_rounds_must_be_a_whole_number(tmp_path: Path, rounds: object, problem: str) -> None:
    p = write(tmp_path, f"matrix:\n  - name: s\n    flows: [soak.fetch_empty]\n    rounds: {str(rounds).lower()}\n")
    with pytest.raises(ScenarioError, match=problem) as ei:
        load_file(p)
    assert ei.value.field == "rounds" and ei.value.entry == "s"


def test_a_soak_refuses_faults(tmp_path: Path) -> None:
    p = write(tmp_path, "matrix:\n  - name: s\n    flows: [ack.ack]\n    faults: [none, stall.pause]\n"
                        "    triggers: [before_ack]\n    rounds: 10\n")
    with pytest.raises(ScenarioError, match="a soak \\(rounds > 1\\) runs the flow without faults"):
        load_file(p)


def test_soak_scenarios_are_not_in_the_default_set() -> None:
    ids = [s.id for s in load_paths([ROOT / "scenarios"])]
    soak = load_paths([ROOT / "scenarios" / "soak"])
    assert soak and all(s.is_soak for s in soak) and not any(s.id in ids for s in soak)


def test_the_default_suite_declares_each_scenario_once_and_each_flow_has_its_control() -> None:
    from pathlib import Path

    from harness.scenario import load_paths

    suite = load_paths([Path(__file__).resolve().parents[2] / "scenarios"])
    ids = [s.id for s in suite]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert len(suite) >= 80
    faulted = {s.flow for s in suite if not s.is_control}
    controls = {s.flow for s in suite if s.is_control}
    assert faulted <= controls, f"flows without a no-fault control: {sorted(faulted - controls)}"
    assert any("quick" in s.tags for s in suite)


def test_an_entrys_tags_are_names(tmp_path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("matrix:\n  - name: t\n    flows: [selftest.clean_task]\n    tags: [quick]\n")
    assert load_file(p)[0].tags == ("quick",)
    p.write_text("matrix:\n  - name: t\n    flows: [selftest.clean_task]\n    tags: ['not a name']\n")
    with pytest.raises(ScenarioError, match="field 'tags'"):
        load_file(p)


def test_cluster_faults_and_replicas_need_a_cluster_entry(tmp_path: Path) -> None:
    entry = "matrix:\n  - name: e\n    flows: [next.fetch]\n    faults: [cluster.stepdown_stream]\n    triggers: [waiting]\n"
    with pytest.raises(ScenarioError) as e:
        load_file(write(tmp_path, entry))
    assert (e.value.entry, e.value.field) == ("e", "faults") and "needs a cluster" in e.value.problem
    with pytest.raises(ScenarioError) as e:
        load_file(write(tmp_path, "matrix:\n  - name: e\n    flows: [next.fetch]\n    params: {replicas: 3}\n"))
    assert e.value.field == "params.replicas"
    with pytest.raises(ScenarioError) as e:
        load_file(write(tmp_path, "matrix:\n  - name: e\n    flows: [next.fetch]\n    cluster: 2\n"))
    assert e.value.field == "cluster"
    (sc,) = [s for s in load_file(write(tmp_path, entry.replace("  - name: e\n", "  - name: e\n    cluster: 3\n")))]
    assert (sc.cluster, sc.id) == (3, "next.fetch[cluster.stepdown_stream@waiting]")
