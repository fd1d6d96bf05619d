"""The client APIs a caller waits on (each returns only once the network or the server
answered), read from each client's source — nats-py 2.16.0 (`nats/aio/client.py`,
`aio/subscription.py`, `aio/msg.py`, `js/client.py`, `js/manager.py`, `js/kv.py`,
`js/object_store.py`) and nats.go v1.55.0 (`nats.go`, `context.go`, `js.go`, `kv.go`,
`object.go`, `jetstream/*.go`) — and the flows that make each call under the faults and the
cancel family, or why none needs to (`harness list --catalogue` prints the table;
tests/checks/test_waiting_apis.py keeps every flow named here registered).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class WaitingAPI:
    """One waiting call: what it is on each client, and its coverage."""

    what: str
    nats_py: str
    nats_go: str
    flows: tuple[str, ...] = ()  # flows that make this call as (or in) their tracked call
    not_applicable: str = ""  # why no flow needs to (set when `flows` is empty)
    note: str = ""  # how the flows make it, when not as their own call
    go_flows: tuple[str, ...] | None = None  # nats.go's flows, where they differ from `flows`
    go_gap: str = ""  # not covered on nats.go yet, and why (reported, never hidden)

    def on_go(self) -> tuple[str, ...]:
        return self.flows if self.go_flows is None else self.go_flows


_APIS: tuple[WaitingAPI, ...] = (
    # -- core ----------------------------------------------------------------------------------
    WaitingAPI("connect", "nats.connect()", "nats.Connect()",
               not_applicable="every scenario connects before its flow; a failed connect is an environment error, not a flow's"),
    WaitingAPI("request", "nc.request()", "nc.Request / RequestWithContext",
               not_applicable="the recovery check makes one after every fault (probe); the JetStream calls below are requests"),
    WaitingAPI("flush", "nc.flush()", "nc.Flush / FlushWithContext", ("publish.core",),
               go_flows=("publish.core", "ack.ack", "ack.nak"), note="nats.go's ack flows flush after acking"),
    WaitingAPI("publish (buffer full)", "nc.publish()", "nc.Publish", ("publish.core",),
               note="nats.go's Publish flushes its full buffer itself, under the connection's lock: KI-026"),
    WaitingAPI("next message (sync)", "sub.next_msg()", "sub.NextMsg / NextMsgWithContext",
               ("next.next_msg", "continue.next_msg")),
    WaitingAPI("message iterator", "sub.messages.__anext__", "jetstream MessagesContext.Next",
               ("next.iterate", "next.ordered", "continue.iterate")),
    WaitingAPI("messages to a callback", "subscribe(cb=...)", "jetstream Consumer.Consume", ("next.consume",)),
    WaitingAPI("subscription drain", "sub.drain()", "sub.Drain", ("next.fetch", "next.iterate"),
               note="the drain.sub_drain fault's action on the flow's subscription"),
    WaitingAPI("connection drain", "nc.drain()", "nc.Drain", ("worker.pull", "next.fetch"), go_flows=("next.fetch",),
               note="the worker's shutdown; the drain.nc_drain fault on next.fetch and others"),
    WaitingAPI("close", "nc.close()", "nc.Close", ("next.next_msg", "publish.core"),
               note="every scenario closes the client; the drain.close fault mid-call"),
    # -- JetStream -------------------------------------------------------------------------------
    WaitingAPI("publish, awaiting the ack", "js.publish()", "js.Publish (both APIs)", ("publish.js", "continue.publish")),
    WaitingAPI("pull fetch", "psub.fetch()", "sub.Fetch / jetstream Consumer.Fetch", ("next.fetch", "continue.fetch", "worker.pull"),
               go_flows=("next.fetch", "continue.fetch")),
    WaitingAPI("ack, awaiting the confirmation", "msg.ack_sync()", "msg.AckSync / jetstream Msg.DoubleAck",
               ("ack.ack_sync", "continue.ack_sync")),
    WaitingAPI("ack, nak, in_progress, term (flushed)", "msg.ack/nak/in_progress/term()", "msg.Ack/Nak/InProgress/Term",
               ("ack.ack", "ack.nak", "ack.nak_delay", "ack.in_progress", "ack.term")),
    WaitingAPI("stream get", "js.get_msg()", "js.GetMsg / jetstream Stream.GetMsg", ("stream.get_msg",)),
    WaitingAPI("consumer create (subscribe)", "js.subscribe() / pull_subscribe()", "js.Subscribe / CreateConsumer",
               ("next.iterate", "objectstore.get")),
    WaitingAPI("consumer info", "js.consumer_info()", "jetstream Consumer.Info", ("consumer.info",)),
    WaitingAPI("consumer pause, resume", "js.pause_consumer() / resume_consumer()", "jetstream PauseConsumer / ResumeConsumer",
               ("consumer.pause",)),
    WaitingAPI("stream and consumer management", "add_stream, delete_consumer, purge_stream, ...", "AddStream, DeleteConsumer, ...",
               not_applicable="one JetStream API request each, like consumer.info; set up by the observer, not the client under test"),
    # -- KV --------------------------------------------------------------------------------------
    WaitingAPI("KV get", "kv.get()", "kv.Get", ("kv.get", "continue.kv_get")),
    WaitingAPI("KV put", "kv.put()", "kv.Put", ("continue.kv_get", "kv.purge", "kv.history")),
    WaitingAPI("KV keys", "kv.keys()", "kv.Keys / ListKeys", ("kv.keys",)),
    WaitingAPI("KV watch, updates", "kv.watchall() / watch().updates()", "kv.WatchAll / Watch, Updates()", ("kv.watch", "kv.watch_history")),
    WaitingAPI("KV watch with replay options", "kv.watch(include_history=True)", "kv.Watch(IncludeHistory())", ("kv.watch_history",)),
    WaitingAPI("KV history", "kv.history()", "kv.History", ("kv.history",)),
    WaitingAPI("KV purge", "kv.purge()", "kv.Purge", ("kv.purge",)),
    WaitingAPI("KV create, update, delete", "kv.create/update/delete()", "kv.Create/Update/Delete",
               not_applicable="a publish awaiting its ack with a header, as kv.put (covered)"),
    # -- ObjectStore -----------------------------------------------------------------------------
    WaitingAPI("ObjectStore get", "obs.get()", "obs.Get + Read", ("objectstore.get", "continue.objectstore_get")),
    WaitingAPI("ObjectStore put", "obs.put()", "obs.Put / PutBytes", ("objectstore.put", "objectstore.delete"),
               note="objectstore.delete's continuation puts objects"),
    WaitingAPI("ObjectStore info", "obs.get_info()", "obs.GetInfo", ("objectstore.info",)),
    WaitingAPI("ObjectStore list", "obs.list()", "obs.List", ("objectstore.list",)),
    WaitingAPI("ObjectStore delete", "obs.delete()", "obs.Delete", ("objectstore.delete",)),
    WaitingAPI("ObjectStore watch, updates, stop", "obs.watch().updates() / stop()", "obs.Watch, Updates(), Stop()", ("objectstore.watch",)),
    WaitingAPI("ObjectStore status, seal, update_meta", "obs.status/seal/update_meta()", "obs.Status/Seal/UpdateMeta",
               not_applicable="one JetStream API request or a meta publish each, like objectstore.info (covered)"),
)

WAITING_APIS: tuple[WaitingAPI, ...] = _APIS


def table() -> list[str]:
    """The coverage table's lines (for `harness list --catalogue`)."""
    out = [f"  {'waiting call':40s} {'nats-py':44s} {'nats.go':42s} covered by"]
    for a in WAITING_APIS:
        cover = ", ".join(a.flows) + (f" ({a.note})" if a.note else "") if a.flows else f"not applicable: {a.not_applicable}"
        if a.go_gap:
            cover += f"; nats.go: NOT COVERED: {a.go_gap}"
        elif a.go_flows is not None:
            cover += f"; nats.go: {', '.join(a.go_flows)}"
        out.append(f"  {a.what:40s} {a.nats_py:44s} {a.nats_go:42s} {cover}")
    return out
