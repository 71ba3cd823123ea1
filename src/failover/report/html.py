"""The report as one self-contained HTML page (no scripts, no fetches: it can be mailed, attached
to a ticket or opened offline): the headline figures, the timeline as an SVG Gantt chart, then the
services, checks, steps and approvals with their UTC times."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from failover.report.gantt import gantt_svg
from failover.report.text import clock, dur, environment, headline, step_notes, title

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d232a; background: #fff; }
main { max-width: 1120px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 12px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 16px; margin: 20px 0 6px; }
.env { background: #fff6d6; border-left: 4px solid #d9a400; padding: 8px 12px; }
.verdict-ok { color: #116b2b; } .verdict-bad { color: #b3261e; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #dde1e6; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px ui-monospace, monospace; background: #f3f5f7; padding: 0 3px; }
figure { margin: 8px 0; overflow-x: auto; } figcaption { font-size: 12px; color: #56606b; }
svg.gantt { font: 11px system-ui, sans-serif; }
svg.gantt .label { text-anchor: end; fill: #1d232a; }
svg.gantt .tick, svg.gantt .tick-offset { text-anchor: middle; fill: #56606b; }
svg.gantt .grid { stroke: #e4e7eb; }
svg.gantt .bar { fill: #2e7d32; } svg.gantt .bar.failed { fill: #c62828; }
svg.gantt .bar.skipped, svg.gantt .bar.pending { fill: #9aa4ae; }
svg.gantt .bar.after-cutover { fill: #7fb383; } svg.gantt .bar.pivot { fill: #6a1b9a; }
svg.gantt .approval { fill: #ffcc80; }
svg.gantt .pivot-mark { fill: #6a1b9a; stroke: #fff; }
svg.gantt .rto { stroke: #0d47a1; stroke-width: 2; stroke-dasharray: 5 3; }
svg.gantt .rto-label { fill: #0d47a1; text-anchor: middle; font-weight: 600; }
svg.gantt .dns-ttl { fill: #bbdefb; opacity: .5; }
"""


def html(doc: dict[str, Any]) -> str:
    """The page of a run's report data, or of a drill's (its summary, then each leg)."""
    drill = doc.get("kind") == "drill"
    if drill:
        sc = doc["scenario"]
        heading = f"Drill report: {doc['runbook']}, {sc['from']} -> {sc['to']} and back"
        body = _drill(doc)
    else:
        heading = title(doc)
        body = _leg(doc, 2)
    env = environment(doc["environment"])
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(heading)}</title><style>{STYLE}</style></head>",
            f"<body><main><h1>{escape(heading)}</h1>",
            *([f'<div class="env">{"<br>".join(_inline(e) for e in env)}</div>'] if env else []),
            body,
            "</main></body></html>",
            "",
        ]
    )


def _drill(doc: dict[str, Any]) -> str:
    summary = doc["summary"]
    verdict = ("verdict-ok", "passed") if summary["ok"] else ("verdict-bad", "FAILED")
    out = [
        f'<p><strong class="{verdict[0]}">Drill {verdict[1]}</strong>: {len(doc["legs"])} run(s), '
        f"{escape(str(summary['started_at']))} to {escape(str(summary['finished_at']))} "
        f"({escape(dur(summary['duration_s']))}).</p>",
    ]
    if summary["sandbox_end"]:
        out.append(f"<p>Sandbox: {escape(summary['sandbox_end'])}.</p>")
    out.append(
        _table(
            ["leg", "run", "status", "RTO", "at the clouds' speed", "predicted", "approvals waited"],
            [
                [
                    f"{row['leg']} ({row['mode']})",
                    f"`{row['run_id']}`",
                    f"{row['status']} (exit {row['exit_code']})",
                    dur(row["rto_measured_s"]),
                    dur(row["rto_at_cloud_speed_s"]),
                    dur(row["rto_predicted_s"]),
                    dur(row["approval_wait_s"]),
                ]
                for row in summary["legs"]
            ],
            cls="summary",
        )
    )
    for n, (leg, row) in enumerate(zip(doc["legs"], summary["legs"], strict=True), 1):
        out += [f'<section class="leg"><h2>Leg {n}: {escape(row["leg"])}</h2>', _leg(leg, 3), "</section>"]
    return "\n".join(out)


def _leg(d: dict[str, Any], level: int) -> str:
    h = f"h{level}"
    svg = gantt_svg(d)
    out = [
        "<ul class='headline'>" + "".join(f"<li>{_inline(line)}</li>" for line in headline(d)) + "</ul>",
        f"<{h}>Timeline</{h}>",
        (
            f"<figure>{svg}<figcaption>Each bar is a step, from its start to its end (UTC clock time "
            "above, time since the run started below). Orange: waiting for an approval; purple with a "
            "diamond: a pivot; light green: after the cutover (not in the RTO); dashed line: the RTO; "
            "blue band: DNS TTL, while resolvers may still answer with the old site.</figcaption></figure>"
            if svg
            else "<p>No step ran.</p>"
        ),
        f"<{h}>Services</{h}>",
        _table(
            [
                "service",
                "tier",
                "RTO (to cutover)",
                "target",
                "predicted",
                "met",
                "all done",
                "RPO achieved",
                "RPO target",
            ],
            [
                [
                    s["name"],
                    s["tier"] or "-",
                    dur(s["measured_s"]),
                    dur(s["rto_target_s"]),
                    dur(s["predicted_s"]),
                    {True: "yes", False: "**no**", None: "-"}[s["met"]],
                    dur(s["done_s"]),
                    dur(s["rpo_achieved_s"]),
                    dur(s["rpo_target_s"]),
                ]
                for s in d["services"]
            ],
        ),
        f"<{h}>Preflight checks</{h}>",
        _table(
            ["check", "site", "at (UTC)", "result", "observed", "message"],
            [
                [
                    f"`{c['id']}`",
                    c["site"],
                    clock(c["at"]),
                    _verdict(c),
                    _short(c["observed"]),
                    c["reason"] or c["message"],
                ]
                for c in d["preflight"]
            ],
        ),
        f"<{h}>Steps</{h}>",
        _table(
            ["step", "site", "started (UTC)", "+", "took", "state", "attempts", "estimate", "note"],
            [
                [
                    f"`{s['id']}`",
                    s["site"],
                    clock(s["started_at"]),
                    dur(s["started_s"]),
                    dur(s["duration_s"]),
                    s["state"],
                    str(s["attempts"]),
                    dur(s["estimate_s"]),
                    step_notes(s),
                ]
                for s in d["steps"]
            ],
        ),
    ]
    if d["approvals"]:
        out += [
            f"<{h}>Approvals</{h}>",
            _table(
                ["step", "asked (UTC)", "answered", "waited", "answer", "by", "reason"],
                [
                    [
                        f"`{a['step']}`",
                        clock(a["asked_at"]),
                        clock(a["answered_at"]),
                        dur(a["wait_s"]),
                        "granted" if a["granted"] else "**denied**",
                        str(a.get("by")),
                        str(a.get("reason") or ""),
                    ]
                    for a in d["approvals"]
                ],
            ),
        ]
    if d["rollback"]:
        out.append(
            f"<{h}>Rollback</{h}><p>Compensated, in this order: "
            + " &rarr; ".join(f"<code>{escape(r)}</code>" for r in d["rollback"])
            + "</p>"
        )
    return "\n".join(out)


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table{attr}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _inline(text: str) -> str:
    """The report's sentences (which mark code with backticks and emphasis with **) as HTML."""
    return _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(r"<code>\1</code>", escape(str(text))))


def _verdict(c: dict[str, Any]) -> str:
    if c["skipped"]:
        return "skipped"
    return {True: "passed", False: "**FAILED**", None: "not run"}[c["ok"]]


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
