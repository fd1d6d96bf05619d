"""The observer: a direct connection (no proxy) that prepares, watches and inspects the server.

It runs its own asyncio loop in a thread so the (synchronous) runner can call it with
a bound on every call. Watching uses the monitoring endpoints (`/jsz`) over HTTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import threading
import urllib.request
from typing import Any, Awaitable, Callable, TypeVar

import nats
import nats.js.errors

from harness.env.base import Environment
from harness.errors import HarnessError
from harness.flows import FlowSpec, Names

T = TypeVar("T")


class ObserverError(HarnessError):
    """The observer could not prepare or inspect the server."""


def stream_for(spec: FlowSpec, names: Names) -> str:
    """The stream whose consumers the flow (or the client, for it) creates."""
    return {"object": f"OBJ_{names.bucket}", "kv": f"KV_{names.bucket}"}.get(spec.consumer_stream, names.stream)


class Observer:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="observer", daemon=True)
        self._thread.start()
        self.nc: Any = None
        self._echo: dict[str, Any] = {}
        self._watches: dict[str, list[Any]] = {}
        self.errors: list[str] = []

    def run(self, fn: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
        return self.result(self.submit(fn), timeout)

    def submit(self, fn: Callable[[], Awaitable[T]]) -> "concurrent.futures.Future[T]":
        """Start `fn()` on the observer's loop and return at once (collect it with `result`)."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop)

    def result(self, fut: "concurrent.futures.Future[T]", timeout: float = 10.0) -> T:
        """What a submitted call returned (or raised), within `timeout` of now."""
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise ObserverError(f"observer call timed out after {timeout}s", hint="is nats-server answering? check its log")

    def connect(self) -> None:
        async def go() -> None:
            if self.nc is None or self.nc.is_closed:
                async def quiet(e: Exception) -> None:
                    # Server-level faults (kill, restart) cut the observer too; it reconnects.
                    # The default error callback would print every attempt's traceback.
                    self.errors.append(f"{type(e).__name__}: {e}")

                self.nc = await nats.connect(
                    **self.env.connect_options(direct=True), max_reconnect_attempts=-1, reconnect_time_wait=0.1,
                    error_cb=quiet,
                )

        self.run(go)

    @property
    def js(self) -> Any:
        return self.nc.jetstream()

    # -- per scenario -------------------------------------------------------------------
    PREPARE_LIMIT = 30.0  # seconds the observer's prepare may take (R3 creates wait for elections)

    def prepare(self, spec: FlowSpec, names: Names, params: dict[str, Any]) -> float:
        """Create what the flow needs, and an echo responder for the recovery probe (the
        seconds the flow's own prepare took)."""
        return self.result(self.start_prepare(spec, names, params), timeout=self.PREPARE_LIMIT)

    def start_prepare(self, spec: FlowSpec, names: Names, params: dict[str, Any]) -> "concurrent.futures.Future[float]":
        """`prepare`, started on the observer's loop; the caller does other work meanwhile and
        collects it with `result(fut, PREPARE_LIMIT)` (on a cluster the servers take ~0.15 s
        to elect the new stream's and consumer's leaders: the agent connects in that time).
        Its result is the seconds the flow's prepare took (its calls to the servers)."""

        async def go() -> float:
            t = self.loop.time()
            if spec.prepare is not None:
                replicas = int(params.get("replicas", 1))
                await spec.prepare(self.js if replicas == 1 else Replicated(self.js, replicas), names, params)

            async def echo(msg: Any) -> None:
                await msg.respond(msg.data)

            took = self.loop.time() - t
            self._echo[names.tag] = await self.nc.subscribe(names.echo_subject, cb=echo)
            await self.nc.flush()
            return took

        return self.submit(go)

    def watch_requests(self, names: Names, subject: str) -> "list[str]":
        """Start counting the requests the server receives on `subject` (wildcards allowed):
        the observer subscribes beside the JetStream API, so it sees each request as the
        server does. Returns the live list of subjects seen; ends with the scenario's cleanup."""
        seen: list[str] = []

        async def go() -> None:
            async def note(msg: Any) -> None:
                seen.append(msg.subject)

            self._watches.setdefault(names.tag, []).append(await self.nc.subscribe(subject, cb=note))
            await self.nc.flush()

        self.run(go)
        return seen

    CLEANUP_LIMIT = 10.0

    def cleanup(self, spec: FlowSpec, names: Names) -> None:
        """Remove the scenario's streams, its echo responder and request watches (best effort, bounded)."""
        self.end_cleanup(self.start_cleanup(spec, names))

    def end_cleanup(self, fut: "concurrent.futures.Future[None]") -> None:
        """Wait (bounded) for a cleanup `start_cleanup` began; it is best effort: nothing raised."""
        try:
            self.result(fut, timeout=self.CLEANUP_LIMIT)
        except Exception:
            pass

    def start_cleanup(self, spec: FlowSpec, names: Names) -> "concurrent.futures.Future[None]":
        """`cleanup`, started on the observer's loop (the runner ends the agent meanwhile)."""

        async def go() -> None:
            for w in self._watches.pop(names.tag, []):
                await w.unsubscribe()
            sub = self._echo.pop(names.tag, None)
            if sub is not None:
                await sub.unsubscribe()
            for s in {names.stream, stream_for(spec, names)}:
                try:
                    await self.js.delete_stream(s)
                except (nats.js.errors.NotFoundError, nats.errors.Error):
                    pass

        return self.submit(go)

    def consumers(self, stream: str) -> dict[str, dict[str, Any]]:
        """Consumer infos of a stream, by name (empty if the stream does not exist)."""

        async def go() -> dict[str, dict[str, Any]]:
            try:
                infos = await self.js.consumers_info(stream)
            except nats.js.errors.NotFoundError:
                return {}
            return {ci.name: _consumer_dict(ci) for ci in infos}

        return self.run(go)

    def _jsz(self, query: str) -> list[tuple[str, dict[str, Any]]]:
        """`/jsz?query` of every node (one for a single server), as (node, document).

        On a cluster a node answers only for the streams it holds, and a consumer's pull
        requests wait on its leader: callers take each stream or consumer from its leader."""
        if not self.env.is_cluster:
            with urllib.request.urlopen(f"{self.env.monitor_url}/jsz?{query}", timeout=2) as r:
                return [("", json.load(r))]
        # Every node at once; a node killed or paused by a fault (None) is left out: the
        # others answer for the cluster.
        docs = self.env.monitor_all(f"/jsz?{query}", timeout=2.0)
        return [(name, doc) for name, doc in docs.items() if doc is not None]

    def jsz_consumers(self, stream: str) -> dict[str, dict[str, Any]]:
        """Consumer state from `/jsz` (cheap to poll: used to fire observed triggers); on a
        cluster, each consumer as its leader reports it."""
        out: dict[str, dict[str, Any]] = {}
        for node, doc in self._jsz("consumers=true&config=true"):
            for acc in doc.get("account_details") or []:
                for s in acc.get("stream_detail") or []:
                    if s.get("name") == stream:
                        for c in s.get("consumer_detail") or []:
                            leads = (c.get("cluster") or {}).get("leader") == node
                            if c["name"] not in out or leads:
                                out[c["name"]] = c
        return out

    def stream(self, name: str) -> dict[str, Any] | None:
        """The stream's retention and state (None if it does not exist)."""

        async def go() -> dict[str, Any] | None:
            try:
                si = await self.js.stream_info(name)
            except nats.js.errors.NotFoundError:
                return None
            st = si.state
            return {"name": name, "retention": str(getattr(si.config.retention, "value", si.config.retention)),
                    "messages": st.messages, "first_seq": st.first_seq, "last_seq": st.last_seq,
                    "num_deleted": st.num_deleted or 0, "replicas": si.config.num_replicas or 1}

        return self.run(go)

    def jsz_stream_messages(self, name: str) -> int | None:
        """The message count `/jsz` reports for stream `name` (the monitoring view, beside the API's)."""
        found = None
        for node, doc in self._jsz("streams=true"):
            for acc in doc.get("account_details") or []:
                for s in acc.get("stream_detail") or []:
                    if s.get("name") == name:
                        leads = (s.get("cluster") or {}).get("leader") == node
                        if found is None or leads:
                            found = (s.get("state") or {}).get("messages")
        return found

    def varz(self) -> dict[str, Any]:
        """The server's `/varz` (its memory, connections, CPU)."""
        with urllib.request.urlopen(f"{self.env.monitor_url}/varz", timeout=2) as r:
            return json.load(r)

    def connection(self, cid: int) -> dict[str, Any] | None:
        """The server's `/connz` record of open connection `cid` (with its subscriptions), or None."""
        url = f"{self.env.monitor_url}/connz?cid={int(cid)}&subs=1"
        with urllib.request.urlopen(url, timeout=2) as r:
            doc = json.load(r)
        conns = [c for c in doc.get("connections") or [] if c.get("cid") == cid]
        return conns[0] if conns else None

    def close(self) -> None:
        async def go() -> None:
            if self.nc is not None and not self.nc.is_closed:
                await self.nc.close()

        try:
            self.run(go, timeout=5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class Replicated:
    """The observer's JetStream context for a flow's `prepare`, with every stream, key-value
    bucket and object store it creates replicated `replicas` times (param `replicas: 3` on a
    cluster); the flows' prepare functions stay as they are. Consumers inherit the stream's."""

    PLACEMENT_WAIT = 10.0  # a node back from a fault is "offline" for placement until the meta leader hears its stats
    # How often a new stream's or consumer's leader is asked for (and a publish that met no
    # responder sent again) within PLACEMENT_WAIT: an election takes ~50-70 ms (nats-server
    # campaigns 50 ms after a group is made), so asking every 50 ms added up to 50 ms a wait,
    # twice a prepare (stream, then durable); each ask is one small request to the servers.
    LEADER_POLL = 0.01

    # A prepare may send a stream's create, its consumer's and its publishes at once
    # (prepare_stream_with_durable): the consumer's create, answered "stream not found" (10059)
    # until the meta leader has the stream, is sent again while that stream's create is in
    # flight, and a publish meeting no responder is sent again (`publish`). Each R3 group's
    # election takes ~70 ms (measured: the create's reply comes with it); one after the other,
    # a stream and its durable took ~145 ms, at once ~90 ms.
    overlaps_creates = True

    def __init__(self, js: Any, replicas: int) -> None:
        self._js, self._replicas = js, replicas
        self._creating: set[str] = set()  # streams whose create is in flight

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def _placed(self, create: Callable[[], Awaitable[T]]) -> T:
        """Create, retrying (bounded) while the cluster answers 'no suitable peers for placement':
        the routes are up (the environment's readiness) but the meta leader has not yet had the
        returning node's statistics, which it sends within about a second."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.PLACEMENT_WAIT
        while True:
            try:
                return await create()
            except nats.js.errors.APIError as e:
                if e.err_code != 10005 or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def _led(self, stream: str) -> None:
        """Wait (bounded) until the new stream's info names a leader: the create's reply can
        come before the stream's group has elected one, and a publish meanwhile has no
        responder (seen: the leader named 150 ms after the reply)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.PLACEMENT_WAIT
        while True:
            info = await self._js.stream_info(stream)
            if (info.cluster is not None and info.cluster.leader) or loop.time() > deadline:
                return
            await asyncio.sleep(self.LEADER_POLL)

    async def _consumer_led(self, stream: str, consumer: str) -> None:
        """Wait (bounded) until the new consumer's info names a leader: as for a stream, the
        create's reply can come before its group elected one, and the client's first call on it
        (nats.go's bind asks CONSUMER.INFO) then finds no responder (seen once in a 3-run gate)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.PLACEMENT_WAIT
        while loop.time() < deadline:
            try:
                info = await self._js.consumer_info(stream, consumer, timeout=1)
                if info.cluster is not None and info.cluster.leader:
                    return
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                pass  # no leader to answer yet
            await asyncio.sleep(self.LEADER_POLL)

    async def add_consumer(self, stream: str, config: Any = None, **params: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.PLACEMENT_WAIT

        async def create() -> Any:
            while True:
                try:
                    return await self._js.add_consumer(stream, config, **params)
                except nats.js.errors.NotFoundError:  # 10059: the stream's create not yet applied
                    if stream not in self._creating or loop.time() > deadline:
                        raise
                    await asyncio.sleep(self.LEADER_POLL)

        info = await self._placed(create)
        await self._consumer_led(stream, info.name)
        return info

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        """Publish, again (bounded) while the stream answers 'no responders' (NoStreamResponseError):
        nothing was stored, and the stream's interest is still reaching the observer's node over
        the routes. (nats.go's Publish retries no-responders by default.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.PLACEMENT_WAIT
        while True:
            try:
                return await self._js.publish(*args, **kwargs)
            except nats.js.errors.NoStreamResponseError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(self.LEADER_POLL)

    async def add_stream(self, config: Any = None, **params: Any) -> Any:
        if config is not None:
            config = dataclasses.replace(config, num_replicas=self._replicas)
        else:
            params["num_replicas"] = self._replicas
        name = config.name if config is not None else params["name"]
        self._creating.add(name)
        try:
            info = await self._placed(lambda: self._js.add_stream(config, **params))
        finally:
            self._creating.discard(name)
        await self._led(info.config.name)
        return info

    async def create_key_value(self, config: Any = None, **params: Any) -> Any:
        if config is not None:
            config = dataclasses.replace(config, replicas=self._replicas)
        else:
            params["replicas"] = self._replicas
        kv = await self._placed(lambda: self._js.create_key_value(config, **params))
        await self._led(kv._stream)
        return kv

    async def create_object_store(self, bucket: Any = None, config: Any = None, **params: Any) -> Any:
        if config is not None:
            config = dataclasses.replace(config, replicas=self._replicas)
        else:
            params["replicas"] = self._replicas
        obs = await self._placed(lambda: self._js.create_object_store(bucket, config, **params))
        await self._led(obs._stream)
        return obs


def _consumer_dict(ci: Any) -> dict[str, Any]:
    cfg = ci.config
    return {
        "name": ci.name,
        "durable": bool(cfg.durable_name),
        "push": bool(cfg.deliver_subject),
        "push_bound": bool(getattr(ci, "push_bound", False)),
        "num_waiting": ci.num_waiting or 0,
        "num_ack_pending": ci.num_ack_pending or 0,
        "num_pending": ci.num_pending or 0,
        "num_redelivered": ci.num_redelivered or 0,
        "inactive_threshold": cfg.inactive_threshold,
        "delivered_stream_seq": ci.delivered.stream_seq if ci.delivered else 0,
        "ack_floor_stream_seq": ci.ack_floor.stream_seq if ci.ack_floor else 0,
        "created": str(ci.created),
    }
