"""Small helpers for the environment tests: bounded waits, nats-py clients, raw NATS sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from typing import Any, Awaitable, Callable, TypeVar

import nats
import psutil

from harness.env.base import Environment

T = TypeVar("T")


def arun(coro: Awaitable[T], timeout: float = 20.0) -> T:
    """Run a coroutine to completion, bounded."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `cond` with capped backoff until true; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def gone(pid: int) -> bool:
    """Whether a process has exited (a zombie counts: it holds nothing any more)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Watched:
    """A nats-py client whose connection events are asyncio.Events the test can await."""

    def __init__(self) -> None:
        self.disconnected = asyncio.Event()
        self.reconnected = asyncio.Event()
        self.lame_duck = asyncio.Event()
        self.errors: list[BaseException] = []
        self.nc: Any = None

    async def connect(self, env: Environment, *, direct: bool = False, **kw: Any) -> Any:
        async def on_disc() -> None:
            self.disconnected.set()

        async def on_reconn() -> None:
            self.reconnected.set()

        async def on_ldm() -> None:
            self.lame_duck.set()

        async def on_err(e: BaseException) -> None:
            self.errors.append(e)

        opts: dict[str, Any] = dict(
            connect_timeout=2,
            reconnect_time_wait=0.05,
            max_reconnect_attempts=-1,
            disconnected_cb=on_disc,
            reconnected_cb=on_reconn,
            lame_duck_mode_cb=on_ldm,
            error_cb=on_err,
        )
        opts.update(kw)
        self.nc = await nats.connect(**env.connect_options(direct=direct), **opts)
        return self.nc

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()


async def wait_event(ev: asyncio.Event, timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(ev.wait(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


async def rtt(nc: Any, n: int = 5, timeout: float = 5.0) -> float:
    """Median round trip of `nc.flush()` (PING/PONG) over `n` tries, in seconds."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await nc.flush(timeout=timeout)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


class RawNats:
    """A bare NATS protocol connection: counts exactly the bytes that arrive."""

    def __init__(self, host: str, port: int, user: str, password: str, timeout: float = 3.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.read_until(b"\r\n")  # INFO
        connect = {"user": user, "pass": password, "verbose": False, "pedantic": False, "protocol": 1}
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        got = self.read_until(b"PONG\r\n")
        if b"-ERR" in got:
            raise AssertionError(f"raw NATS connect refused: {got!r}")
        # The server follows CONNECT with an async INFO; a second PING/PONG makes sure it is
        # read, so what comes next is only what the test asks for.
        self.sock.sendall(b"PING\r\n")
        self.read_until(b"PONG\r\n")
        self.buf = b""

    def read_until(self, token: bytes) -> bytes:
        while token not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed before {token!r}; got {self.buf!r}")
            self.buf += chunk
        i = self.buf.index(token) + len(token)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_to_eof(self) -> bytes:
        """Everything until the peer closes (bounded by the socket timeout)."""
        out, self.buf = self.buf, b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return out
            out += chunk

    def close(self) -> None:
        self.sock.close()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
