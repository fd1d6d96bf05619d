"""The run's settings, resolved once into a frozen record: option > $VAR > ini > default, and a
bad value says which value and where it came from. Hand-built mappings, no pytest session."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest

from harness.env.topology import CLUSTER3
from harness.session import ChaosSettings, SettingsError, pick, resolve_settings
from harness.targets.resolve import target_slug

BASE = Path("/project")
NOW = datetime.datetime(2026, 12, 4, 15, 30, 0)


def resolve(options: dict | None = None, environ: dict | None = None, ini: dict | None = None, **kw) -> ChaosSettings:
    return resolve_settings(options or {}, environ or {}, ini or {}, base=BASE, now=NOW, **kw)


@pytest.fixture(autouse=True)
def no_seed_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_CHAOS_SEED", raising=False)  # resolve_seed reads it itself


def test_precedence_is_option_then_environment_then_ini_then_default() -> None:
    args = ("chaos_env", "NATS_CHAOS_ENV", "chaos_env", "local")
    full = ({"chaos_env": "compose"}, {"NATS_CHAOS_ENV": "x"}, {"chaos_env": "y"})
    assert pick(*full, *args) == ("compose", "--chaos-env")
    assert pick({}, *full[1:], *args) == ("x", "$NATS_CHAOS_ENV")
    assert pick({}, {}, full[2], *args) == ("y", "ini chaos_env")
    assert pick({}, {"NATS_CHAOS_ENV": ""}, {"chaos_env": ""}, *args) == ("local", "default")  # empty is unset


def test_defaults() -> None:
    s = resolve(options={"chaos_seed": "7"})
    assert (s.backend, s.backend_source, s.seed, s.seed_source) == ("local", "default", 7, "--chaos-seed")
    assert (s.client_spec, s.server_spec, s.soak_seconds) == (None, None, 0.0)
    assert s.reports == BASE / "reports" and s.run_id == f"20261204-153000-7-{target_slug(None, None)}"
    assert (s.flow_modules, s.worker, s.cluster) == ((), False, None)


def test_a_cluster_for_every_scenario() -> None:
    s = resolve(environ={"NATS_CHAOS_CLUSTER": "3"})
    assert (s.cluster, s.cluster_source) == (CLUSTER3, "$NATS_CHAOS_CLUSTER")


def test_the_record_is_frozen() -> None:
    s = resolve(options={"chaos_seed": "7"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.seed = 8  # type: ignore[misc]


def test_an_explicit_run_id_wins_over_the_stamp() -> None:
    assert resolve(environ={"NATS_CHAOS_RUN_ID": "mine"}).run_id == "mine"


def test_a_worker_takes_the_controllers_seed_and_run_id() -> None:
    s = resolve(options={"chaos_seed": "7"}, worker={"chaos_seed": 11, "chaos_run_id": "run-1"})
    assert (s.seed, s.seed_source, s.run_id, s.worker) == (11, "controller", "run-1", True)


def test_reports_relative_to_the_base_absolute_as_given() -> None:
    assert resolve(ini={"chaos_reports": "out"}).reports == BASE / "out"
    assert resolve(environ={"NATS_CHAOS_REPORTS": "/tmp/r"}).reports == Path("/tmp/r")


@pytest.mark.parametrize(
    "options, environ, ini, message",
    [
        ({"chaos_env": "docker"}, {}, {}, "Invalid chaos environment 'docker' from --chaos-env: expected one of local, compose"),
        ({}, {"NATS_CHAOS_ENV": "k8s"}, {}, "Invalid chaos environment 'k8s' from $NATS_CHAOS_ENV: expected one of local, compose"),
        ({}, {}, {"chaos_env": "vm"}, "Invalid chaos environment 'vm' from ini chaos_env: expected one of local, compose"),
        ({"chaos_seed": "soon"}, {}, {}, "Invalid chaos seed 'soon' from --chaos-seed: expected a non-negative integer"),
        ({}, {"NATS_CHAOS_SOAK": "-1"}, {}, "Invalid chaos soak '-1' from $NATS_CHAOS_SOAK: expected seconds from 0 to 604800"),
        ({"chaos_soak": "long"}, {}, {}, "Invalid chaos soak 'long' from --chaos-soak: expected seconds from 0 to 604800"),
        ({"chaos_cluster": "2"}, {}, {}, "Invalid cluster size '2' from --chaos-cluster: a topology has 1 or 3 nodes, not 2"),
        ({}, {"NATS_CHAOS_CLUSTER": "big"}, {}, "Invalid cluster size 'big' from $NATS_CHAOS_CLUSTER: a cluster size is a number (1 or 3), not 'big'"),
    ],
)
def test_a_bad_value_says_where_it_came_from(options: dict, environ: dict, ini: dict, message: str) -> None:
    with pytest.raises(SettingsError) as ei:
        resolve(options, environ, ini)
    assert str(ei.value) == message


def test_a_bad_client_target_names_its_source() -> None:
    with pytest.raises(SettingsError) as ei:
        resolve(environ={"NATS_CHAOS_CLIENT": "nats-rs==1.0"})
    assert str(ei.value).startswith("Invalid client target 'nats-rs==1.0' from $NATS_CHAOS_CLIENT: ")
