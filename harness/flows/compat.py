"""Shims for older nats-py releases, each written the way a user of that release wrote it.

The flows call the current API; where an older release (back to 2.0.0) spells the same
thing differently, the flow goes through one of these. Where a release simply lacks a
feature, the flow declares it (`requires=` on `@flow`) or raises `NotApplicable`.
"""

from __future__ import annotations

import inspect
from typing import Any

from harness.flows import NotApplicable


async def pull_bind(js: Any, *, durable: str, stream: str, subject: str) -> Any:
    """A pull subscription bound to an existing durable consumer.

    `js.pull_subscribe_bind` arrived in 2.1.x; before it, `js.pull_subscribe(subject, durable)`
    looked the durable up and bound to it (that was the documented way).
    """
    if hasattr(js, "pull_subscribe_bind"):
        return await js.pull_subscribe_bind(durable=durable, stream=stream)
    return await js.pull_subscribe(subject, durable=durable, stream=stream)


def sub_closed(sub: Any) -> bool:
    """Whether the subscription ended already (`Subscription._closed`, absent in old releases)."""
    return bool(getattr(sub, "_closed", False))


def supported(fn: Any, **tuning: Any) -> dict[str, Any]:
    """The keyword arguments `fn` takes, of `tuning`: optional tuning (e.g. pending limits) that a
    user of an older release, which lacks it, simply did not pass."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(tuning)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(tuning)
    return {k: v for k, v in tuning.items() if k in params}


def require_param(fn: Any, param: str, feature: str) -> None:
    """NotApplicable unless `fn` takes `param` (a feature this release does not have yet)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if param not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise NotApplicable(f"this release has no {feature} ({getattr(fn, '__qualname__', fn)} takes no {param!r})")
