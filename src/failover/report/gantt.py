"""A run's timeline as an SVG Gantt chart: a row per step that ran, ticks in UTC clock time and
time since the start, approvals' waits, pivots, the RTO and the DNS TTL after it marked."""

from __future__ import annotations

from html import escape
from typing import Any

from failover.report.text import clock, dur, epoch

LABEL_W, CHART_W, RIGHT = 250.0, 760.0, 70.0
TOP, ROW_H, BAR_H, BOTTOM = 46.0, 20.0, 12.0, 24.0
NICE = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
MAX_TICKS = 8


def gantt_svg(d: dict[str, Any]) -> str:
    """The chart of one run's report data; an empty string when nothing ran."""
    rows = [s for s in d["steps"] if s["started_s"] is not None and s["finished_s"] is not None]
    if not rows:
        return ""
    rto = d["rto"]
    asks = {a["step"]: a for a in d["approvals"] if a["asked_s"] is not None}
    ends = [s["finished_s"] for s in rows] + [a["answered_s"] for a in asks.values()]
    ends += [t for t in (rto["measured_s"], rto["old_site_resolvable_until_s"]) if t is not None]
    span = max(float(max(ends)), 0.001)
    step = next((n for n in NICE if span / n <= MAX_TICKS), NICE[-1])
    height = TOP + ROW_H * len(rows) + BOTTOM
    width = LABEL_W + CHART_W + RIGHT

    def x(t: float) -> float:
        return round(LABEL_W + min(max(float(t), 0.0), span) / span * CHART_W, 2)

    out = [
        f'<svg class="gantt" xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
        f'viewBox="0 0 {width:g} {height:g}" role="img" aria-label="Timeline of run {escape(d["run_id"])}">',
        *_ticks(d["started_at"], span, step, x, height),
    ]
    for i, s in enumerate(rows):
        y = TOP + i * ROW_H
        out.append(f'<text class="label" x="{LABEL_W - 8:g}" y="{y + BAR_H - 2:g}">{escape(s["id"])}</text>')
        ask = asks.get(s["id"])
        if ask is not None:
            out.append(
                f'<rect class="approval" data-step="{escape(s["id"])}" x="{x(ask["asked_s"])}" y="{y:g}" '
                f'width="{max(2.0, x(ask["answered_s"]) - x(ask["asked_s"])):.2f}" height="{BAR_H:g}">'
                f"<title>{escape(_ask_text(ask))}</title></rect>"
            )
        start = max(s["started_s"], ask["answered_s"]) if ask is not None else s["started_s"]
        bar = max(2.0, x(s["finished_s"]) - x(start))
        kind = " pivot" if s["pivot"] else (" after-cutover" if s["after_cutover"] else "")
        out.append(
            f'<rect class="bar {escape(s["state"])}{kind}" data-step="{escape(s["id"])}" '
            f'data-start-s="{start:g}" data-end-s="{s["finished_s"]:g}" x="{x(start)}" y="{y:g}" '
            f'width="{bar:.2f}" height="{BAR_H:g}"><title>{escape(_bar_text(s))}</title></rect>'
        )
        if s["pivot"]:
            cx, cy, r = x(s["finished_s"]), y + BAR_H / 2, BAR_H / 2 + 1
            out.append(
                f'<path class="pivot-mark" data-step="{escape(s["id"])}" '
                f'd="M{cx:g},{cy - r:g} L{cx + r:g},{cy:g} L{cx:g},{cy + r:g} L{cx - r:g},{cy:g} Z">'
                f"<title>pivot {escape(s['id'])}: the point of no return</title></path>"
            )
    out += _rto_marks(rto, x, height)
    out.append("</svg>")
    return "\n".join(out)


def _ticks(started_at: str | None, span: float, step: float, x: Any, height: float) -> list[str]:
    base = epoch(started_at) or 0.0
    out = []
    n = 0
    while n * step <= span + 1e-9:
        t = n * step
        at = base + t
        whole = f"{int(at // 3600 % 24):02d}:{int(at // 60 % 60):02d}:{int(at % 60):02d}"
        label = whole if step >= 1 else f"{whole}.{int(at % 1 * 10)}"
        out += [
            f'<line class="grid" x1="{x(t)}" y1="{TOP - 6:g}" x2="{x(t)}" y2="{height - BOTTOM + 4:g}"/>',
            f'<text class="tick" x="{x(t)}" y="14">{label}</text>',
            f'<text class="tick-offset" x="{x(t)}" y="30">+{_offset(t, step)}</text>',
        ]
        n += 1
    return out


def _offset(t: float, step: float) -> str:
    """Time since the start at a tick, as precise as the ticks' spacing."""
    if step < 1:
        return f"{t:.1f}s"
    return dur(t) if t else "0s"


def _rto_marks(rto: dict[str, Any], x: Any, height: float) -> list[str]:
    measured = rto["measured_s"]
    if measured is None:
        return []
    out = []
    until = rto["old_site_resolvable_until_s"]
    if until is not None and until > measured:
        out.append(
            f'<rect class="dns-ttl" x="{x(measured)}" y="{TOP - 6:g}" width="{x(until) - x(measured):.2f}" '
            f'height="{height - BOTTOM - TOP + 10:g}"><title>DNS: resolvers may answer with the old site '
            f"until +{dur(until)}</title></rect>"
        )
    out += [
        f'<line class="rto" x1="{x(measured)}" y1="{TOP - 8:g}" x2="{x(measured)}" '
        f'y2="{height - BOTTOM + 6:g}"/>',
        f'<text class="rto-label" x="{x(measured)}" y="{height - 6:g}">RTO {escape(dur(measured))}</text>',
    ]
    return out


def _bar_text(s: dict[str, Any]) -> str:
    what = f"{s['id']}: {s['state']}, started {clock(s['started_at'])} UTC, took {dur(s['duration_s'])}"
    extra = [f"{s['attempts']} attempt(s)"] if s["attempts"] > 1 else []
    extra += ["PIVOT"] if s["pivot"] else []
    extra += ["cutover"] if s["cutover"] else []
    extra += ["after the cutover"] if s["after_cutover"] else []
    return what + (f" ({', '.join(extra)})" if extra else "")


def _ask_text(a: dict[str, Any]) -> str:
    answer = "granted" if a["granted"] else "denied"
    return (
        f"approval of {a['step']}: asked {clock(a['asked_at'])}, {answer} {clock(a['answered_at'])} "
        f"by {a.get('by')} after {dur(a['wait_s'])}"
    )
