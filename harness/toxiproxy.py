"""One small client for the Toxiproxy HTTP API (v2.12).

Why not toxiproxy-python directly: its host and port are class attributes shared by
the whole process (two environments, e.g. xdist workers or local + compose, would
fight over them), no call has a timeout (a wedged API hangs the runner), it cannot
update a toxic, and it reports only 400/404/409. What it does serve is its exception
vocabulary, which code written against it already catches: our errors subclass
`toxiproxy.exceptions.ProxyExists`, `NotFound` and `InvalidToxic` where they mean the
same thing. The transport is the standard library's `urllib`, bounded on every call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import urllib.error
import urllib.request
from typing import Any, Iterator

from toxiproxy import exceptions as _tp_exc

from harness.errors import ToxiproxyError

DEFAULT_TIMEOUT = 5.0
# The API refuses browser User-Agents ("Mozilla/..."); say who we are.
USER_AGENT = "nats-chaos-harness"

TOXIC_TYPES = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data")
STREAMS = ("downstream", "upstream")


class ProxyExistsError(ToxiproxyError, _tp_exc.ProxyExists):
    """409: a proxy or toxic with that name exists."""


class NotFoundError(ToxiproxyError, _tp_exc.NotFound):
    """404: no such proxy or toxic."""


class InvalidToxicError(ToxiproxyError, _tp_exc.InvalidToxic):
    """400: the server rejected the request body (bad toxic type or attribute)."""


_STATUS_ERRORS = {409: ProxyExistsError, 404: NotFoundError, 400: InvalidToxicError}


@dataclasses.dataclass(frozen=True)
class Toxic:
    """A toxic as the API reports it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Proxy:
    """A proxy as the API reports it."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[Toxic, ...] = ()

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


def _proxy(d: dict[str, Any]) -> Proxy:
    return Proxy(
        name=d["name"],
        listen=d["listen"],
        upstream=d["upstream"],
        enabled=bool(d["enabled"]),
        toxics=tuple(_toxic(t) for t in d.get("toxics") or ()),
    )


def _toxic(d: dict[str, Any]) -> Toxic:
    return Toxic(
        name=d["name"],
        type=d["type"],
        stream=d.get("stream", "downstream"),
        toxicity=float(d.get("toxicity", 1.0)),
        attributes=dict(d.get("attributes") or {}),
    )


class Toxiproxy:
    """Client for one Toxiproxy server, e.g. `Toxiproxy("http://127.0.0.1:8474")`."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    # -- transport ---------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace").strip()
            cls = _STATUS_ERRORS.get(e.code, ToxiproxyError)
            raise cls(
                f"Toxiproxy {method} {path} answered {e.code}",
                evidence=f"response: {detail[:500]}",
                hint="check the proxy/toxic name and attributes against the Toxiproxy API",
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            # (HTTPException: what answers on the API port is not HTTP, e.g. a nats-server that
            # took the port: BadStatusLine with its INFO line)
            reason = getattr(e, "reason", e)
            raise ToxiproxyError(
                f"Toxiproxy API at {self.url} unreachable: {reason}",
                evidence=f"request: {method} {path} (timeout {self.timeout}s)",
                hint="is toxiproxy-server running? `harness env status` shows the environment",
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    # -- server ------------------------------------------------------------
    def version(self) -> str:
        v = self._call("GET", "/version")
        return v.get("version", "?") if isinstance(v, dict) else str(v).strip()

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    # -- proxies -----------------------------------------------------------
    def proxies(self) -> dict[str, Proxy]:
        return {name: _proxy(d) for name, d in (self._call("GET", "/proxies") or {}).items()}

    def get_proxy(self, name: str) -> Proxy:
        return _proxy(self._call("GET", f"/proxies/{name}"))

    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> Proxy:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return _proxy(self._call("POST", "/proxies", body))

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        """Disable closes the listener and every connection; enable listens again."""
        return _proxy(self._call("POST", f"/proxies/{name}", {"enabled": enabled}))

    def enable(self, name: str) -> Proxy:
        return self.set_enabled(name, True)

    def disable(self, name: str) -> Proxy:
        return self.set_enabled(name, False)

    # -- toxics ------------------------------------------------------------
    def toxics(self, proxy: str) -> list[Toxic]:
        return [_toxic(t) for t in self._call("GET", f"/proxies/{proxy}/toxics") or ()]

    def add_toxic(
        self,
        proxy: str,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> Toxic:
        if type not in TOXIC_TYPES:
            raise InvalidToxicError(
                f"unknown toxic type {type!r}", hint=f"one of: {', '.join(TOXIC_TYPES)}"
            )
        if stream not in STREAMS:
            raise InvalidToxicError(f"unknown toxic stream {stream!r}", hint="downstream or upstream")
        body = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        return _toxic(self._call("POST", f"/proxies/{proxy}/toxics", body))

    def update_toxic(self, proxy: str, name: str, *, toxicity: float | None = None, **attributes: Any) -> Toxic:
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return _toxic(self._call("POST", f"/proxies/{proxy}/toxics/{name}", body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    @contextlib.contextmanager
    def toxic(self, proxy: str, type: str, **kwargs: Any) -> Iterator[Toxic]:
        """Add a toxic for the duration of a `with` block; removed in `finally`, always."""
        t = self.add_toxic(proxy, type, **kwargs)
        try:
            yield t
        finally:
            with contextlib.suppress(NotFoundError):
                self.remove_toxic(proxy, t.name)
