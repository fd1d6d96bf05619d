"""A soak's memory series in the HTML report: one small SVG chart per metric (what the
record's `series["memory"]` holds, from harness/checks/memory.py), the warm-up rounds shaded,
the fitted slope per round printed with the metric's bound (red when beyond it; metrics with
no bound are "context": RSS and the server's figures). The same for every client: each chart is
named after the metric its agent reported (nats-py: traced, objects, tasks; nats.go: heap,
heap_objects, goroutines, listeners; both: subs, rss)."""

from __future__ import annotations

import html
from typing import Any, Mapping

e = html.escape

CW, CH, PAD = 240.0, 90.0, 4.0  # one chart (SVG user units)


def _num(x: float) -> str:
    """Short and readable: 1234567 -> 1.23M, 0.05 -> 0.05."""
    a = abs(x)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def memory_charts(r: Mapping[str, Any]) -> str:
    """The charts of a soak record, "" for any other record."""
    m = (r.get("series") or {}).get("memory")
    if not m or not m.get("metrics"):
        return ""
    rounds, warmup = int(m.get("rounds", 0)), int(m.get("warmup", 0))
    out = [f"<div class=memory><p>Memory per round ({rounds} rounds; the first {warmup} are the warm-up, "
           f"shaded, left out of the fit):</p>"]
    for name, ys in m["metrics"].items():
        out.append(_chart(name, [float(y) for y in ys], warmup, m.get("units", {}).get(name, ""),
                          m.get("slopes", {}).get(name), m.get("bounds", {}).get(name)))
    out.append("</div>")
    return "".join(out)


def _chart(name: str, ys: list[float], warmup: int, unit: str, slope: float | None, bound: float | None) -> str:
    n = len(ys)
    lo, hi = (min(ys), max(ys)) if ys else (0.0, 0.0)
    span = f"{_num(lo)}–{_num(hi)} {unit}" if hi != lo else f"flat at {_num(lo)} {unit}"
    if hi == lo:
        lo, hi = lo - 1, hi + 1

    def x(i: float) -> float:
        return PAD + (i / max(n - 1, 1)) * (CW - 2 * PAD)

    def y(v: float) -> float:
        return CH - 22 - (v - lo) / (hi - lo) * (CH - 40)

    over = bound is not None and slope is not None and slope > bound
    colour = "#c0392b" if over else "#34495e"
    judged = f"bound {_num(bound)}" if bound is not None else "context"
    caption = f"{name}: slope {_num(slope)} {unit}/round ({judged})" if slope is not None else f"{name} ({judged})"
    parts = [f"<svg class='memory-chart{' over' if over else ''}' data-metric='{e(name)}' viewBox='0 0 {CW:.0f} {CH:.0f}' "
             f"style='display:inline-block;width:{CW:.0f}px;height:{CH:.0f}px;margin:0 6px 6px 0' role=img aria-label='{e(caption)}'>"]
    if warmup > 0 and n > 1:
        parts.append(f"<rect class=warmup x='{PAD}' y='14' width='{x(min(warmup, n) - 0.5) - PAD:.1f}' height='{CH - 34:.0f}' "
                     f"fill='#eceff4'><title>warm-up: rounds 1-{warmup}</title></rect>")
    pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(ys))
    parts.append(f"<polyline points='{pts}' fill='none' stroke='{colour}' stroke-width='1.3'/>")
    parts.append(f"<text x='{PAD}' y='10' font-size='9' fill='{colour}'>{e(caption)}</text>")
    parts.append(f"<text x='{PAD}' y='{CH - 4:.0f}' font-size='8' fill='#777'>{e(span)}</text>")
    parts.append(f"<text x='{CW - PAD:.0f}' y='{CH - 4:.0f}' font-size='8' fill='#777' text-anchor='end'>round {n}</text>")
    parts.append("</svg>")
    return "".join(parts)
