"""The pytest plugin and `harness run`, tested in subprocesses against real servers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

CLEAN = """\
matrix:
  - name: clean
    flows: [selftest.clean_task, selftest.clean_iterator]
"""
LEAKY = """\
matrix:
  - name: leaky
    flows: [selftest.leak_task, selftest.clean_task]
"""


def _scenarios(pytester: pytest.Pytester, text: str) -> Path:
    d = pytester.mkdir("scenarios")
    p = d / "s.yaml"
    p.write_text(text)
    return p


def test_scenarios_become_items_selectable_with_k(pytester: pytest.Pytester) -> None:
    _scenarios(pytester, CLEAN)
    r = pytester.runpytest_subprocess("--collect-only", "-q", "-k", "iterator", "scenarios")
    r.stdout.fnmatch_lines(["scenarios/s.yaml::selftest.clean_iterator[[]none[]]"])
    assert "clean_task" not in r.stdout.str()


def test_clean_run_passes_and_writes_journal(pytester: pytest.Pytester) -> None:
    _scenarios(pytester, CLEAN)
    r = pytester.runpytest_subprocess("scenarios", "--chaos-seed=7", f"--junitxml={pytester.path}/j.xml")
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["*seed 7 (--chaos-seed)*", "*passed=2 failed=0 inconclusive=0 error=0 not_applicable=0  seed=7  target=nats-py 2.16.0 / nats-server *"])
    journal = json.loads((pytester.path / "reports" / "latest" / "journal.json").read_text())
    assert journal["header"]["seed"] == 7
    assert journal["header"]["nats_server"].startswith("v2.") or journal["header"]["nats_server"][0].isdigit()
    rec = journal["records"][0]
    assert {"id", "flow", "fault", "trigger", "seed", "verdict", "findings", "events", "timings"} <= set(rec)
    assert {"inherent", "overhead", "wall"} <= set(rec["timings"])
    assert (pytester.path / "j.xml").exists()
    assert (pytester.path / "reports" / "latest" / "report.html").exists()


def test_findings_fail_the_item_with_a_replay_command(pytester: pytest.Pytester) -> None:
    _scenarios(pytester, LEAKY)
    r = pytester.runpytest_subprocess("scenarios", "--chaos-seed=11")
    r.assert_outcomes(passed=1, failed=1)
    r.stdout.fnmatch_lines(
        ["*FAILED: selftest.leak_task[[]none[]]*", "*[[]tasks[]] leaked task _forever*",
         "*replay: harness run 'scenarios/s.yaml::selftest.leak_task[[]none[]]' --seed 11 --env local*"]
    )
    rec = next(r for r in json.loads((pytester.path / "reports/latest/journal.json").read_text())["records"] if r["verdict"] == "failed")
    assert rec["replay"] and rec["findings"][0]["check"] == "tasks"


def test_invalid_file_is_a_collection_error_naming_the_field(pytester: pytest.Pytester) -> None:
    _scenarios(pytester, "matrix:\n  - name: e1\n    flows: [next.fetch]\n    params: {count: many}\n")
    r = pytester.runpytest_subprocess("scenarios")
    assert r.ret == 2
    r.stdout.fnmatch_lines(["*s.yaml: entry e1: field 'params.count': must be int*"])


def test_bad_seed_is_a_usage_error_saying_where_it_came_from(pytester: pytest.Pytester) -> None:
    _scenarios(pytester, CLEAN)
    r = pytester.runpytest_subprocess("scenarios", "--chaos-seed=soon")
    assert r.ret == 4
    r.stderr.fnmatch_lines(["*Invalid chaos seed 'soon' from --chaos-seed*"])


def test_xdist_workers_share_one_seed_and_one_journal(pytester: pytest.Pytester) -> None:
    _scenarios(pytester, CLEAN)
    r = pytester.runpytest_subprocess("scenarios", "-n", "2", "--chaos-seed=5")
    r.assert_outcomes(passed=2)
    journal = json.loads((pytester.path / "reports/latest/journal.json").read_text())
    assert journal["header"]["seed"] == 5 and len(journal["records"]) == 2


def test_pytest_n_auto_is_the_harness_schedule_and_counts_a_cluster(tmp_path: Path) -> None:
    """`pytest scenarios -n auto`, without `harness run`: the plugin's choice of workers, not
    xdist's core count, and each worker's memory budget holds a cluster when a scenario asks
    for one. Run from the project's root, as a user does: there (its nats_chaos.egg-info
    first on the path) the plugins registered in an order that let xdist answer first, 2 on 2
    cores, until the plugin's hook was made tryfirst."""
    from harness.schedule import choose_workers, machine

    f = tmp_path / "s.yaml"
    f.write_text("defaults:\n  cluster: 3\n" + CLEAN.replace("selftest.clean_task, ", ""))
    r = subprocess.run([sys.executable, "-m", "pytest", str(f), "-n", "auto", "--chaos-seed=5", "-p", "no:randomly",
                        f"--chaos-reports={tmp_path / 'reports'}", "-p", "no:cacheprovider"],
                       cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    want = choose_workers(machine(), clusters=True).workers
    assert r.returncode == 0, r.stdout[-2000:]
    assert f"created: {want}/{want} workers" in r.stdout and "memory (with a cluster each)" in r.stdout, r.stdout[-2000:]


def _harness(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The `harness` command as a user runs it; `env` adds environment variables."""
    import os

    exe = Path(sys.executable).with_name("harness")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env={**os.environ, **env})


def test_harness_run_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/clean.yaml").write_text(CLEAN)
    (tmp_path / "leaky").mkdir()
    (tmp_path / "leaky/leaky.scenarios.yaml").write_text(LEAKY)
    clean = _harness(tmp_path, "run", "--seed", "3")
    assert clean.returncode == 0
    assert clean.stdout.splitlines()[0].startswith("nats-chaos: seed 3 (--seed), run ")  # a replay needs it
    assert _harness(tmp_path, "run", "leaky/leaky.scenarios.yaml").returncode == 1
    none = _harness(tmp_path, "run", "-k", "no_such_scenario")
    assert none.returncode == 2 and "no scenario selected" in none.stderr
    env_seed = _harness(tmp_path, "run", "-k", "clean_task", NATS_CHAOS_SEED="77")
    assert env_seed.returncode == 0 and "seed 77 ($NATS_CHAOS_SEED)" in env_seed.stdout, env_seed.stdout
    bad_seed = _harness(tmp_path, "run", NATS_CHAOS_SEED="soon")
    assert bad_seed.returncode == 2 and bad_seed.stderr.startswith("harness run: invalid seed ") and "from $NATS_CHAOS_SEED" in bad_seed.stderr
    (tmp_path / "scenarios/bad.yaml").write_text("matrix:\n  - flows: [nope]\n")
    bad = _harness(tmp_path, "list")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[0].endswith("field 'flows': unknown flow 'nope'")


SLOW = """\
matrix:
  - name: slow
    flows: [selftest.yield]
    params: {seconds: 20.0}
    timeout: 30
"""


def _cmdline(p) -> str:
    """A child's command line, or "" for one that ended meanwhile (a short-lived child such as
    `nats-server --version` can be a zombie between listing and reading)."""
    import psutil

    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_nothing_behind(tmp_path: Path, sig: str) -> None:
    import signal
    import time

    import psutil

    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/slow.yaml").write_text(SLOW)
    exe = Path(sys.executable).with_name("harness")
    # A terminal's foreground job has Ctrl-C at its default; a job a script started in the
    # background (no job control) inherits SIGINT ignored, so give the run what a terminal gives.
    proc = subprocess.Popen([str(exe), "run"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    started: list[psutil.Process] = []
    # Wait (bounded) until the run is inside the scenario: servers and an agent are up.
    while time.monotonic() < deadline:
        started = me.children(recursive=True)
        names = " ".join(_cmdline(p) for p in started)
        if "harness.agent" in names and "nats-server" in names and "toxiproxy-server" in names:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the run never got its servers and agent up")
    time.sleep(0.5)  # inside the 20 s flow
    proc.send_signal(getattr(signal, sig))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    gone, alive = psutil.wait_procs(started, timeout=5)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left behind after {sig}: {[p.cmdline() for p in alive]}"


def test_a_yaml_file_named_explicitly_runs_and_its_replay_works_from_the_cwd(tmp_path: Path) -> None:
    # Any YAML file the user names is a scenario file, wherever it lives; the replay
    # command must be typeable from where they ran, and the reports land under the cwd.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.yaml").write_text(LEAKY)
    work = tmp_path / "work"
    work.mkdir()
    first = _harness(work, "run", "../elsewhere/mine.yaml", "--seed", "4")
    assert first.returncode == 1, first.stdout + first.stderr
    replay = next(line for line in first.stdout.splitlines() if line.startswith("replay: "))
    assert replay.endswith("elsewhere/mine.yaml::selftest.leak_task[none]' --seed 4 --env local --client 'nats-py==2.16.0'"), replay
    journal = json.loads((work / "reports/latest/journal.json").read_text())
    assert (work / "reports/latest/junit.xml").exists() and len(journal["records"]) == 2
    import shlex

    again = _harness(work, *shlex.split(replay.removeprefix("replay: harness ")))
    assert again.returncode == 1 and "1 failed" in again.stdout, again.stdout + again.stderr


def test_a_bad_scenario_file_starts_nothing(tmp_path: Path) -> None:
    # Every environment the harness starts makes a run directory under the run root first.
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/good.yaml").write_text(CLEAN)
    (tmp_path / "scenarios/bad.yaml").write_text("matrix:\n  - name: b\n    flows: [next.fetch]\n    params: {count: x}\n")
    root = tmp_path / "runs"
    r = _harness(tmp_path, "run", NATS_CHAOS_RUN_ROOT=str(root))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "bad.yaml: entry b: field 'params.count'" in r.stdout + r.stderr
    assert not root.exists() or not any(root.iterdir()), f"something started: {list(root.iterdir())}"


def test_soak_scenarios_run_only_when_named(tmp_path: Path) -> None:
    # `make chaos` (harness run scenarios/) must not collect scenarios/soak/; `make soak` names the files.
    root = Path(__file__).resolve().parents[2]

    def collected(*paths: str) -> list[str]:
        out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths],
                             cwd=root, capture_output=True, text=True, timeout=60)
        return [line for line in out.stdout.splitlines() if "::" in line]

    default = collected("scenarios")
    assert default and not any("/soak/" in n for n in default)
    soak = collected(*sorted(str(p.relative_to(root)) for p in (root / "scenarios" / "soak").glob("*.yaml")))
    # every soak entry is a no-fault run ([none], or [none~variant] such as nats.go's ~legacy API)
    assert soak and all("scenarios/soak/" in n and re.search(r"\[none(~[^\]]+)?\]", n) for n in soak), soak
