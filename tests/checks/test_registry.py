"""The check registry: a check is one module; the runner only loops over its steps."""

from __future__ import annotations

import pytest

from harness import checks
from harness.checks import AFTER_CLOSE, AFTER_FLOW, RUNNER_RECORDS
from harness.scenario import DEFAULT_CHECKS


def test_every_default_check_is_registered_with_a_doc_and_at_least_one_step() -> None:
    for name in DEFAULT_CHECKS:
        c = checks.CHECKS[name]
        assert c.doc and c.steps, name
        assert all(s.needs <= set(checks.NEEDS) for s in c.steps), name


def test_steps_come_in_registration_order_per_phase() -> None:
    names = [s.check for s in checks.steps(AFTER_FLOW, DEFAULT_CHECKS)]
    assert names == ["iterators", "recovery", "subscriptions", "tasks", "consumers", "messages", "delivery", "interest",
                     "replica_interest", "memory"]
    names = [s.check for s in checks.steps(AFTER_CLOSE, DEFAULT_CHECKS)]
    assert names == ["iterators", "tasks", "consumers", "replicas", "replica_consumers", "accounting", "resources", "loop"]


def test_unselected_checks_run_only_their_free_steps() -> None:
    # Steps that read only the runner's records cost nothing: their findings stay on the timeline.
    got = {s.check for s in checks.steps(AFTER_FLOW, ("tasks",))}
    assert got == {"tasks", "iterators", "delivery", "memory"}
    assert all(s.needs <= RUNNER_RECORDS for s in checks.steps(AFTER_CLOSE, ()))


def test_with_an_unresponsive_agent_only_steps_reading_the_runner_s_records_run() -> None:
    got = checks.steps(AFTER_FLOW, DEFAULT_CHECKS, agent_answers=False)
    assert [s.check for s in got] == ["iterators", "delivery", "memory"]
    assert {s.check for s in checks.steps(AFTER_CLOSE, DEFAULT_CHECKS, agent_answers=False)} == {"iterators", "loop"}


def test_needed_tells_the_runner_which_baselines_to_take() -> None:
    assert "fds" in checks.needed(DEFAULT_CHECKS)
    assert "fds" not in checks.needed(("tasks", "consumers"))


def test_a_new_check_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "CHECKS", dict(checks.CHECKS))
    checks.check("demo", "a check made in a test")

    @checks.step("demo", AFTER_CLOSE, needs=("outcome",))
    def demo(s):  # noqa: ANN001
        return [checks.Finding("demo", "found")]

    assert [s.check for s in checks.steps(AFTER_CLOSE, ("demo",))][-1] == "demo"


def test_registration_refuses_unknown_phases_and_needs() -> None:
    with pytest.raises(ValueError, match="unknown phase"):
        checks.step("tasks", "before lunch", needs=())
    with pytest.raises(ValueError, match="unknown needs"):
        checks.step("tasks", AFTER_FLOW, needs=("crystal ball",))
    with pytest.raises(ValueError, match="declared with check"):
        checks.step("no-such-check", AFTER_FLOW, needs=())(lambda s: [])
