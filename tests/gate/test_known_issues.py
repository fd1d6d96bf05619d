"""known_issues.yaml as values: ranges, patterns, and a malformed file named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.known_issues import KnownIssueError, Target, load_known_issues, parse_range, target_of

GOOD = """\
- id: KI-001
  title: cancelled get leaks its consumer
  scenarios: ["objectstore.get[disconnect.reset_peer@transfer]", "kv.*[drain.close@*]"]
  checks: [tasks, consumers]
  client: "nats-py>=2.16.0,<=2.16.0"
  server: "*"
- id: KI-002
  title: a Go one
  scenarios: ["next.fetch[*]"]
  checks: [iterators]
  client: "nats.go>=v1.40.1,<v1.41.1"
  server: ">=v2.11,<2.13"
  flaky: true
  reason: the late 408 races the client's own timer
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "known_issues.yaml"
    p.write_text(text)
    return p


PY_2_16 = Target("nats-py", "2.16.0", "2.12.8")


def test_patterns_take_brackets_literally_and_star_as_any_run(tmp_path: Path) -> None:
    ki = load_known_issues(write(tmp_path, GOOD)).issues[0]
    assert ki.matches("objectstore.get[disconnect.reset_peer@transfer]")
    assert not ki.matches("objectstore.get[d]")  # a fnmatch character class would match this
    assert ki.matches("kv.watch[drain.close@blocked]") and not ki.matches("kv.watch[drain.nc_drain@blocked]")
    assert ki.explains("kv.watch[drain.close@blocked]", "tasks") and not ki.explains("kv.watch[drain.close@blocked]", "loop")


@pytest.mark.parametrize("rng, impl, version, inside", [
    ("nats-py>=2.16.0,<=2.16.0", "nats-py", "2.16.0", True),
    ("nats-py>=2.16.0,<=2.16.0", "nats-py", "2.17.0", False),
    ("nats-py>=2.16.0,<=2.16.0", "nats-py", "2.15.2", False),
    ("nats-py>=2.16", "nats-py", "2.17.0.dev0", True),  # a source build of the next release
    ("nats-py>=2.16.0,<=2.16.0", "nats.go", "2.16.0", False),  # another implementation never applies
    ("nats-py", "nats-py", "2.1.0", True),
    ("nats-py>=2.16", "nats-py", "main@abc123", False),  # an unreadable version is in no bounded range
    ("nats.go>=v1.40.1,<v1.41.1", "nats.go", "v1.40.1", True),
    ("nats.go>=v1.40.1,<v1.41.1", "nats.go", "v1.41.0", True),
    ("nats.go>=v1.40.1,<v1.41.1", "nats.go", "v1.41.1", False),
    ("nats.go>=v1.40.1,<v1.41.1", "nats.go", "v1.41.1-rc.1", True),  # a pre-release sorts before its release
    ("nats.go>=v1.40.1,<v1.41.1", "nats.go", "v1.39.9", False),
    ("nats.go>=v1.40.1,<v1.41.1", "nats-py", "1.40.5", False),
    ("*", "nats.go", "v9.9.9", True),
])
def test_client_ranges(rng: str, impl: str, version: str, inside: bool) -> None:
    assert parse_range(rng, side="client").contains(impl, version) is inside


def test_server_ranges_accept_tags_with_a_v() -> None:
    r = parse_range(">=v2.11,<2.13", side="server")
    assert r.contains("nats-server", "2.12.8") and not r.contains("nats-server", "2.13.0")
    assert parse_range("nats-server>=2.12", side="server").contains("nats-server", "2.12.0")


def test_an_issue_applies_only_to_targets_in_both_ranges(tmp_path: Path) -> None:
    ki1, ki2 = load_known_issues(write(tmp_path, GOOD)).issues
    assert ki1.applies_to(PY_2_16) and not ki1.applies_to(Target("nats-py", "2.17.0", "2.12.8"))
    assert ki2.applies_to(Target("nats.go", "v1.40.3", "2.12.8"))
    assert not ki2.applies_to(Target("nats.go", "v1.40.3", "2.13.1"))  # server out of range
    assert not ki2.applies_to(PY_2_16)


def test_the_target_comes_from_the_header_target_or_the_version_keys() -> None:
    new = {"target": {"client": {"impl": "nats.go", "version": "v1.41.0", "source": "release"},
                      "server": {"version": "2.12.8", "source": "pypi"}}, "nats_py": "2.16.0"}
    assert target_of(new) == Target("nats.go", "v1.41.0", "2.12.8")
    assert target_of({"nats_py": "2.16.0", "nats_server": "v2.12.8"}) == PY_2_16
    assert target_of({"target": {}, "nats_py": "2.16.0", "nats_server": "v2.12.8"}) == PY_2_16


@pytest.mark.parametrize("text, message", [
    ("- id: KI-001\n  title: t\n  scenarios: []\n  checks: [taks]\n  client: nats-py\n",
     "entry KI-001: field 'checks': unknown check 'taks'"),
    ("- id: KI-001\n  title: t\n  scenarios: []\n  checks: [tasks]\n",
     "entry KI-001: field 'client': missing"),
    ("- id: KI-001\n  title: t\n  scenarios: []\n  checks: [tasks]\n  client: 'nats-py>=two'\n",
     "entry KI-001: field 'client': not a PEP 440 specifier"),
    ("- id: KI-001\n  title: t\n  scenarios: []\n  checks: [tasks]\n  client: 'natspy>=2'\n",
     "entry KI-001: field 'client': must start with a client implementation"),
    ("- id: KI-001\n  title: t\n  scenarios: []\n  checks: [tasks]\n  client: 'nats.go>=1.x'\n",
     "entry KI-001: field 'client': not a semver version"),
    ("- id: KI-001\n  title: t\n  scenarios: []\n  checks: [tasks]\n  client: nats-py\n  flaky: true\n",
     "entry KI-001: field 'reason': flaky: true needs a reason"),
    ("- id: KI-001\n  title: t\n  scenarios: x\n  checks: [tasks]\n  client: nats-py\n",
     "entry KI-001: field 'scenarios': must be a list"),
    ("- id: KI-001\n  title: t\n  scenarios: []\n  checks: [tasks]\n  client: nats-py\n  repro: nope/repro.py\n",
     "entry KI-001: field 'repro': nope/repro.py does not exist"),
    ("- id: KI-001\n  title: t\n  scenarios: []\n  checks: [tasks]\n  client: nats-py\n  sceanrios: []\n",
     "entry KI-001: field 'sceanrios': unknown field"),
    ("- title: t\n", "entry #1: field 'id': missing"),
    ("- id: KI-001\n  title: t\n  scenarios: []\n  checks: [tasks]\n  client: nats-py\n"
     "- id: KI-001\n  title: u\n  scenarios: []\n  checks: [tasks]\n  client: nats-py\n",
     "entry KI-001: field 'id': duplicate id"),
    ("id: KI-001\n", "must be a list of issues"),
    ("- [", "not readable YAML"),
])
def test_a_malformed_file_names_the_file_the_entry_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(KnownIssueError) as e:
        load_known_issues(p)
    first = str(e.value).splitlines()[0]
    assert first.startswith(f"{p}: ") and message in first, first
