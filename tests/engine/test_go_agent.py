"""nats.go as the client under test: the Go agent builds per release, speaks the protocol,
reports goroutines the checks can read, is caught by every deliberate fault (and passes the
clean twins), and finds the two seed defects on the releases that had them — and passes the
releases that fixed them.

Builds are cached per release under the target cache (a second `ensure` reuses the binary).
Skipped only when the Go toolchain is absent; CI has Go.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from engine_helpers import FAST, agent_processes, selftest

from harness.agent.runner_side import AgentProcess
from harness.env.local import LocalEnvironment
from harness.runner import Runner
from harness.scenario import load_paths
from harness.targets import AgentCommand, ClientTarget, TargetError, cache_root
from harness.targets import nats_go
from harness.targets.nats_go import NatsGo

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="the Go toolchain (go) is not on PATH: the Go agent cannot be built")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = nats_go.DEFAULT_VERSION
RUNS = int(os.environ.get("NATS_CHAOS_DETECTION_RUNS", "1"))  # 5 by hand: each verdict must hold every time


def build(version: str) -> AgentCommand:
    return NatsGo().ensure(ClientTarget("nats.go", version, "release"), cache_root())[1]


def scenario(sid: str):
    return next(s for s in load_paths([ROOT / "scenarios"]) if s.id == sid)


@pytest.fixture(scope="module")
def env() -> Iterator[LocalEnvironment]:
    with LocalEnvironment() as e:
        yield e


@pytest.fixture(scope="module")
def runners(env: LocalEnvironment) -> Iterator[dict[str, Runner]]:
    """One runner per nats.go release, made on first use."""
    made: dict[str, Runner] = {}

    class Lazy(dict):
        def __missing__(self, version: str) -> Runner:
            made[version] = self[version] = Runner(env, run_seed=1234, settings=FAST, agent_command=build(version))
            return made[version]

    try:
        yield Lazy()
    finally:
        for r in made.values():
            r.close()
    assert agent_processes() == [], "an agent outlived the runner"


# -- build -----------------------------------------------------------------------------


def test_the_agent_is_built_once_per_release_and_reused() -> None:
    cmd = build(DEFAULT)
    binary = Path(cmd.argv[0])
    stamp = binary.parent / ".complete"
    before = (binary.stat().st_mtime_ns, stamp.read_text())
    assert build(DEFAULT) == cmd
    assert (binary.stat().st_mtime_ns, stamp.read_text()) == before, "a cached agent was rebuilt"
    assert f"{nats_go.MODULE}@{DEFAULT}" in before[1]


def test_a_release_that_does_not_exist_names_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(TargetError) as e:
        NatsGo().ensure(ClientTarget("nats.go", "v1.41.9", "release"), tmp_path)
    first = str(e.value).splitlines()[0]
    assert "nats.go v1.41.9 is not a published release (nearest:" in first and "v1.41.2" in first
    assert not any(tmp_path.iterdir()), "a failed target left something in the cache"


def test_no_go_toolchain_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TargetError) as e:
        NatsGo().ensure(ClientTarget("nats.go", DEFAULT, "release"), tmp_path)
    assert str(e.value).splitlines()[0] == "nats.go targets need the Go toolchain: `go` was not found on PATH"
    assert "Hint: install the Go toolchain" in str(e.value)


def test_a_cached_agent_runs_without_go_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmd = build(DEFAULT)  # with go: built (or already cached)
    monkeypatch.setenv("PATH", str(tmp_path))  # no go from here on
    target, again = NatsGo().ensure(ClientTarget("nats.go", DEFAULT, "release"), cache_root())
    assert again == cmd and target.version == DEFAULT
    a = AgentProcess(again)
    try:
        a.wait_ready()
        assert a.hello and a.hello["client"] == {"impl": "nats.go", "version": DEFAULT}
    finally:
        a.exit()


def _git(cwd: Path, *args: str) -> str:
    import subprocess

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


def test_a_checkout_reports_its_tag_or_its_pseudo_version(tmp_path: Path) -> None:
    import subprocess

    build(DEFAULT)  # the release's sources are in the module cache from here
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    src = tmp_path / "nats.go"
    shutil.copytree(Path(modcache) / f"{nats_go.MODULE}@{DEFAULT}", src)
    for p in [src, *src.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # the module cache is read-only
    _git(src, "init", "-q")
    _git(src, "add", "-A")
    _git(src, "commit", "-qm", "release")
    _git(src, "tag", DEFAULT)

    def hello_version(target: ClientTarget) -> tuple[ClientTarget, str]:
        t, cmd = NatsGo().ensure(target, tmp_path / "cache")
        a = AgentProcess(cmd)
        try:
            a.wait_ready()
            assert a.hello is not None
            return t, a.hello["client"]["version"]
        finally:
            a.exit()

    spec = ClientTarget("nats.go", "", "path", path=str(src))
    t, v = hello_version(spec)
    assert (t.version, v, t.commit) == (DEFAULT, DEFAULT, _git(src, "rev-parse", "--short=12", "HEAD"))
    assert t.label == f"nats.go @ {src} ({DEFAULT}, {t.commit})"
    (src / "chaos.go").write_text("package nats\n")
    _git(src, "add", "-A")
    _git(src, "commit", "-qm", "a change after the release")
    t, v = hello_version(spec)
    major, minor, patch = DEFAULT[1:].split(".")
    assert t.version == v and v.startswith(f"v{major}.{minor}.{int(patch) + 1}-0.") and v.endswith("-" + _git(src, "rev-parse", "--short=12", "HEAD")), v


def test_a_build_failure_shows_the_compilers_last_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # v1.31.0's jetstream package lacks ObjectStore: built without the tag that compiles those flows out.
    monkeypatch.setattr(nats_go, "build_tags", lambda version: [])
    with pytest.raises(TargetError) as e:
        NatsGo().ensure(ClientTarget("nats.go", "v1.31.0", "release"), tmp_path)
    text = str(e.value)
    assert text.startswith("building the Go agent against nats.go v1.31.0 failed:")
    assert "undefined: jetstream.ObjectStore" in text  # the compiler's own line
    assert not any(p.name.startswith("nats.go-") for p in tmp_path.iterdir())


def test_flows_an_old_release_lacks_are_not_applicable(runners: dict[str, Runner]) -> None:
    rec = runners["v1.31.0"].run(scenario("next.iterate[none]"))
    assert rec.verdict == "not_applicable", (rec.verdict, rec.reason)
    assert "nats.go v1.31.0" in rec.reason and "jetstream" in rec.reason
    assert runners["v1.31.0"].run(scenario("ack.ack[none]")).verdict == "passed"  # the legacy API's flows run
    # and the flows both APIs have run on the legacy one there (JetStreamContext.ObjectStore, KeyValue)
    for sid in ("objectstore.get[none]", "kv.get[none]"):
        rec = runners["v1.31.0"].run(scenario(sid))
        assert rec.verdict == "passed", (sid, rec.verdict, rec.reason, [f.summary for f in rec.findings])


API_CHOICE = """\
matrix:
  - name: legacy
    variant: legacy
    flows: [objectstore.get, kv.get]
    params: {api: legacy}
  - name: jetstream
    variant: jetstream
    flows: [stream.get_msg]
    params: {api: jetstream}
"""


def test_a_scenario_picks_either_jetstream_api_of_nats_go(runners: dict[str, Runner], env: LocalEnvironment,
                                                          tmp_path: Path) -> None:
    from harness.scenario import load_file

    p = tmp_path / "api.yaml"
    p.write_text(API_CHOICE)
    scs = load_file(p)
    for sc in scs:
        rec = runners[DEFAULT].run(sc)
        assert rec.verdict == "passed", (sc.id, rec.reason, [f.summary for f in rec.findings])
    legacy_only = runners["v1.31.0"].run(next(s for s in scs if s.flow == "stream.get_msg"))
    assert legacy_only.verdict == "not_applicable" and "no jetstream package" in legacy_only.reason
    py = Runner(env, run_seed=1234, settings=FAST)  # nats-py has one API: not applicable, never an error
    try:
        rec = py.run(scs[0])
        assert rec.verdict == "not_applicable" and "api: legacy" in rec.reason, (rec.verdict, rec.reason)
    finally:
        py.close()


CONSUME = """\
matrix:
  - name: consume
    flows: [next.consume]
    faults: [drain.sub_drain]
    triggers: [blocked]
"""


def test_a_drain_ends_a_consume_context_and_older_releases_lack_it(runners: dict[str, Runner], tmp_path: Path) -> None:
    from harness.scenario import load_file

    p = tmp_path / "consume.yaml"
    p.write_text(CONSUME)
    (sc,) = load_file(p)
    rec = runners[DEFAULT].run(sc)  # sub_drain -> ConsumeContext.Drain(); the flow waits on Closed()
    assert rec.verdict == "passed", (rec.reason, [f.summary for f in rec.findings])
    assert any(e["what"] == "action returned" and e.get("name") == "sub_drain" for e in rec.events)
    old = runners["v1.33.0"].run(sc)
    assert old.verdict == "not_applicable" and "Closed()" in old.reason, (old.verdict, old.reason)


# -- protocol and snapshot ---------------------------------------------------------------


def test_the_go_agent_speaks_the_protocol_and_reports_goroutines(env: LocalEnvironment) -> None:
    a = AgentProcess(build(DEFAULT))
    try:
        a.wait_ready()
        assert a.hello and a.hello["client"] == {"impl": "nats.go", "version": DEFAULT}
        assert "objectstore.get" in a.hello["flows"] and set(a.hello["not_applicable"]) == {"kv.keys@api_request"}
        before = a.snapshot()
        assert before.conn.connected is False and all(t.role == "agent" for t in before.tasks)
        a.request("connect", timeout=10, options=env.connect_options())
        snap = a.snapshot()
        assert snap.conn.connected and not snap.conn.closed and snap.conn.cid
        entry = {t.coro: t for t in snap.tasks}
        read_loop = entry["github.com/nats-io/nats.go.(*Conn).readLoop"]
        assert read_loop.role == "" and read_loop.state == "IO wait"
        assert read_loop.stack[0] == f"{read_loop.coro} at github.com/nats-io/nats.go@{DEFAULT}/nats.go:" + read_loop.stack[0].rsplit(":", 1)[1]
        assert read_loop.created_at and "in github.com/nats-io/nats.go.(*Conn).processConnectInit" in read_loop.created_at[0]
        assert entry["main.(*agent).heartbeat"].role == "agent"
        assert snap.proc.pid == a.proc.pid and snap.proc.rss > 0 and snap.proc.fds > 0 and snap.proc.threads > 0
        # The request inbox appears with the first request: the subscription and its goroutine name its subject.
        with pytest.raises(Exception):
            a.request("probe", timeout=5, subject="chaos.nobody", bound=0.3)
        snap = a.snapshot()
        inbox = [s for s in snap.subs if s.subject.startswith("_INBOX.") and s.subject.endswith(".*")]
        assert len(inbox) == 1 and inbox[0].sid > 0
        assert [t.subject for t in snap.tasks if t.coro.endswith("(*Conn).waitForMsgs")] == [inbox[0].subject]
        fds = a.request("fds")["fds"]
        assert any(v.startswith("socket:") for v in fds.values())
        a.request("close")
        after = a.snapshot()
        assert after.conn.closed and not after.conn.connected
    finally:
        a.exit()


# -- detection: the deliberate faults are caught, the clean twins pass --------------------

LEAKY = [
    ("selftest.leak_task", "tasks", "leaked task main.forever (chan receive, after the flow)"),
    ("selftest.leave_consumer", "consumers", "kept alive"),
    ("selftest.stuck_iterator", "iterators", "messages.Next still pending"),
    ("selftest.spin", "loop", "spinning for"),
    # a soak whose round keeps 4 KiB, 20 small objects and a blocked goroutine (a growing slice)
    ("selftest.soak_leak", "memory", "heap grows"),
    # the process frozen (SIGSTOP, resumed by a child): not even the heartbeat runs
    ("selftest.block", "loop", "event loop blocked (idle CPU)"),
    ("selftest.leak_socket", "resources", "1 file descriptor(s) left open (after close)"),
    # a duplicate of the connection's descriptor: close() does not end the socket
    ("selftest.connection_outlives_close", "resources", "the server still lists the client's connection"),
    ("selftest.lose_message", "messages", "the flow gave up at its deadline with 9 of 10 messages"),
    # started by connect (present at the after-connect baseline), alive after close: the flusher,
    # since nats.go's pinger is a timer
    ("selftest.pinger_outlives_close", "tasks", "leaked task github.com/nats-io/nats.go.(*Conn).flusher (chan receive, after close)"),
    ("selftest.hang_in_finish", "iterators", "the flow's terminal action did not return"),
]
CLEAN = ["selftest.clean_task", "selftest.clean_consumer", "selftest.clean_iterator", "selftest.yield",
         "selftest.soak_clean", "selftest.clean_socket", "selftest.keep_messages"]


@pytest.mark.parametrize("flow,check,phrase", LEAKY, ids=[f for f, _, _ in LEAKY])
def test_a_deliberate_fault_in_go_is_caught(runners: dict[str, Runner], flow: str, check: str, phrase: str) -> None:
    for _ in range(RUNS):
        rec = runners[DEFAULT].run(selftest(flow))
        caught = [f for f in rec.findings if f.check == check and phrase in f.summary]
        assert rec.verdict == "failed" and caught, (rec.verdict, rec.reason, [(f.check, f.summary) for f in rec.findings])
        assert all(f.evidence for f in caught)


@pytest.mark.parametrize("flow", CLEAN)
def test_a_clean_twin_in_go_passes(runners: dict[str, Runner], flow: str) -> None:
    for _ in range(RUNS):
        rec = runners[DEFAULT].run(selftest(flow))
        assert rec.verdict == "passed" and rec.findings == (), (rec.reason, [f.summary for f in rec.findings])


def test_a_go_spin_is_busy_and_its_evidence_is_the_spinning_goroutine(runners: dict[str, Runner]) -> None:
    rec = runners[DEFAULT].run(selftest("selftest.spin"))
    loop = [f for f in rec.findings if f.check == "loop"]
    assert loop and "while the flow waited in a client call" in loop[0].summary
    assert "main.selftestSpin" in loop[0].evidence  # the goroutine dump the agent wrote on SIGUSR1
    stuck = runners[DEFAULT].run(selftest("selftest.stuck_iterator"))
    assert any("lost wake-up (idle CPU)" in f.summary and "main.selftestIterator" in f.evidence for f in stuck.findings)


def test_a_go_agent_that_crashes_is_an_error_with_its_stderr_and_a_frozen_one_is_dumped(runners: dict[str, Runner]) -> None:
    import psutil

    before = {p.pid for p in agent_processes()}  # other releases' runners keep a warm spare each
    rec = runners[DEFAULT].run(selftest("selftest.crash"))
    assert rec.verdict == "error" and "agent died" in rec.reason, (rec.verdict, rec.reason)
    assert any("selftest.crash: about to die" in e.get("error", "") for e in rec.events), "stderr not recorded"
    assert runners[DEFAULT].run(selftest("selftest.clean_task")).verdict == "passed"
    frozen = runners[DEFAULT].run(selftest("selftest.block"))
    loop = [f for f in frozen.findings if f.check == "loop"]
    assert loop and "main.selftestBlock" in loop[0].evidence, [(f.summary, f.evidence[:300]) for f in frozen.findings]
    assert len({p.pid for p in agent_processes()} - before) <= 1, "an agent outlived its scenario (one warm spare is new)"
    def cmdline(p: psutil.Process) -> str:
        try:
            return " ".join(p.cmdline())
        except psutil.Error:  # gone meanwhile
            return ""

    resumers = [p for p in psutil.Process().children(recursive=True) if "kill -CONT" in cmdline(p)]
    assert resumers == [], "the block's resuming child outlived the block"


def test_a_go_soak_records_the_go_runtimes_figures(runners: dict[str, Runner]) -> None:
    rec = runners[DEFAULT].run(selftest("selftest.soak_leak"))
    m = rec.series["memory"]
    assert m["rounds"] == 25 and m["warmup"] == 5 and all(len(v) == 25 for v in m["metrics"].values())
    assert set(m["metrics"]) == {"heap", "heap_objects", "goroutines", "subs", "listeners", "rss",
                                 "server_mem", "ack_pending", "redelivered"}
    assert m["slopes"]["heap"] > 4096 and m["slopes"]["heap_objects"] > 8 and m["slopes"]["goroutines"] == 1.0
    assert m["bounds"] == {"heap": 1024.0, "heap_objects": 8.0, "goroutines": 0.05, "subs": 0.05, "listeners": 0.05}
    summaries = [f.summary for f in rec.findings if f.check == "memory"]
    assert any(s.startswith("goroutines grows 1 goroutines per round") for s in summaries), summaries
    # the leaked goroutines are also what the tasks check finds
    assert any(f.check == "tasks" and "main.forever" in f.summary for f in rec.findings)


SOAK = ROOT / "scenarios" / "soak"


@pytest.mark.parametrize("sid", ["soak.nak_delay[none]", "soak.nak_delay[none~legacy]", "soak.consume_drain[none]"])
def test_the_seeds_soak_and_a_consume_loop_run_on_nats_go(runners: dict[str, Runner], sid: str) -> None:
    # The seed's pattern (NakWithDelay, 600 s, on every message, both APIs) and Consume() then
    # Drain(), as `make soak` runs them (60 rounds, ~1.5 s): a clean release passes, with the
    # naks pending on the server. (Fewer rounds would not do: a fit over 10 rounds reads one
    # step of the runtime's tables as growth.)
    sc = next(s for s in load_paths([SOAK]) if s.id == sid)
    rec = runners[DEFAULT].run(sc)
    assert rec.verdict == "passed", (rec.reason, [f.summary for f in rec.findings])
    m = rec.series["memory"]
    assert m["rounds"] == sc.rounds and "heap" in m["slopes"]
    if "nak_delay" in sid:
        assert m["metrics"]["ack_pending"][-1] == sc.rounds * sc.params["count"]  # every nak'd message still pending


# -- the seed defects: found on the releases that had them, passed on the fixes -------------

OBJECT_GET = "objectstore.get[disconnect.proxy_down@consumer_created~no-deadline]"
NEXT_DRAIN = "next.iterate[drain.sub_drain@blocked]"


def test_nats_go_1848_objectstore_get_hangs_on_v1_41_0_and_not_on_v1_41_1(runners: dict[str, Runner]) -> None:
    bad = runners["v1.41.0"].run(scenario(OBJECT_GET))
    stuck = [f for f in bad.findings if f.check == "iterators" and "objectstore.get still pending" in f.summary]
    assert bad.verdict == "failed" and stuck, (bad.verdict, bad.reason, [f.summary for f in bad.findings])
    assert "(*js).upsertConsumer" in stuck[0].evidence and "requestWithContext" in stuck[0].evidence
    good = runners["v1.41.1"].run(scenario(OBJECT_GET))
    assert good.verdict == "passed", (good.reason, [f.summary for f in good.findings])


def test_nats_go_1524_next_spins_after_drain_on_v1_32_0_and_not_on_v1_33_0(runners: dict[str, Runner]) -> None:
    bad = runners["v1.32.0"].run(scenario(NEXT_DRAIN))
    summaries = [f.summary for f in bad.findings]
    assert bad.verdict == "failed", (bad.verdict, bad.reason)
    assert any("messages.Next still pending" in s and "spin (busy CPU)" in s for s in summaries), summaries
    assert any(f.check == "loop" and "spinning" in f.summary for f in bad.findings), summaries
    good = runners["v1.33.0"].run(scenario(NEXT_DRAIN))
    assert good.verdict == "passed", (good.reason, [f.summary for f in good.findings])


# -- a client lock held across a blocked write: read around, never waited on (KI-026) ---------

CLOSE_STALLED = "publish.core[stall.upstream+drain.close@in_call]"


def test_a_close_behind_a_publisher_stalled_upstream_is_judged_not_an_error(runners: dict[str, Runner]) -> None:
    """nats.go holds its connection lock while the publisher's write waits on the stalled link, and
    Close() waits for it (KI-026). The agent's snapshot takes the client's locks with TryLock
    within a bound and names the one it found held, so the scenario is judged: before, the
    snapshot waited on the lock and the runner's request timed out (verdict `error`)."""
    rec = runners[DEFAULT].run(scenario(CLOSE_STALLED))
    summaries = [f.summary for f in rec.findings]
    assert rec.verdict == "failed", (rec.verdict, rec.reason, summaries)
    assert any(f.check == "iterators" and "close did not return" in f.summary for f in rec.findings), summaries
    held = [lock for e in rec.events if e.get("what") == "client lock held" for lock in e["locks"]]
    assert held and held[0].startswith("nc.mu (the connection's lock) held"), held
