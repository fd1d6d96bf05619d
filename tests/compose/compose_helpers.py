"""Small helpers for the compose tests: bounded async runs, bounded waits, nats-py clients."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, TypeVar

import nats

from harness.env.base import Environment

T = TypeVar("T")


def arun(coro: Awaitable[T], timeout: float = 30.0) -> T:
    """Run a coroutine to completion, bounded."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `cond` with capped backoff until true; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


async def await_event(event: asyncio.Event, timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


async def connect(env: Environment, *, direct: bool = False, **kwargs: Any) -> nats.NATS:
    """A nats-py client through the proxy (or direct), short timeouts, no reconnect unless asked."""
    opts: dict[str, Any] = {"connect_timeout": 5, "allow_reconnect": False, "max_reconnect_attempts": 0}
    opts.update(kwargs)
    return await nats.connect(**env.connect_options(direct=direct), **opts)
