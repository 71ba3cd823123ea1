"""The report in Markdown, for a review or a postmortem document: a Mermaid Gantt chart whose axis
reads UTC clock time, then the services, checks, steps and approvals with their times."""

from __future__ import annotations

from typing import Any

from failover.report.text import clock, dur, environment, epoch, headline, step_notes, title


def leg_markdown(d: dict[str, Any], level: int = 1) -> str:
    """One run's report; its headings start at ``level`` (below 1: a leg of a drill, whose title and
    environment the drill's report gives)."""
    h = "#" * level
    out = (
        [] if level > 1 else [f"{h} {title(d)}", "", *(f"> {line}" for line in environment(d["environment"]))]
    )
    out += [""] if out and out[-1] else []
    out += [f"- {line}" for line in headline(d)]
    out += ["", f"{h}# Services", "", _services_table(d), "", f"{h}# Timeline", "", *_gantt(d), ""]
    out += [f"{h}# Preflight checks", "", *(_check(c) for c in d["preflight"])]
    out += [
        "",
        f"{h}# Steps",
        "",
        "Times are UTC; `+` is since the run started. Steps marked *after cutover* do not count in "
        "the RTO (drains of the old site, checks after the move).",
        "",
        "| step | started | took | state | attempts | estimate | note |",
        "|---|---|---|---|---|---|---|",
        *(_step_row(s) for s in d["steps"]),
    ]
    out += _lags(d, h)
    if d["approvals"]:
        out += [
            "",
            f"{h}# Approvals",
            "",
            "| step | asked | answered | waited | answer | by | reason |",
            "|---|---|---|---|---|---|---|",
            *(_approval_row(a) for a in d["approvals"]),
        ]
    if d["rollback"]:
        out += [
            "",
            f"{h}# Rollback",
            "",
            "Compensated, in this order: " + " -> ".join(f"`{r}`" for r in d["rollback"]),
        ]
    return "\n".join(out) + "\n"


def drill_markdown(doc: dict[str, Any]) -> str:
    """A drill's legs under one summary."""
    summary = doc["summary"]
    sc = doc["scenario"]
    out = [f"# Drill report: {doc['runbook']}, {sc['from']} -> {sc['to']} and back", ""]
    out += [f"> {line}" for line in environment(doc["environment"])]
    verdict = "**passed**" if summary["ok"] else "**FAILED**"
    out += [
        "",
        f"- drill {verdict}: {len(doc['legs'])} run(s), {summary['started_at']} to "
        f"{summary['finished_at']} ({dur(summary['duration_s'])})",
    ]
    if summary["sandbox_end"]:
        out.append(f"- sandbox: {summary['sandbox_end']}")
    out += [
        "",
        "| leg | run | status | RTO | at the clouds' speed | predicted | approvals waited |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary["legs"]:
        out.append(
            f"| {row['leg']} ({row['mode']}) | `{row['run_id']}` | {row['status']} (exit "
            f"{row['exit_code']}) | {dur(row['rto_measured_s'])} | {dur(row['rto_at_cloud_speed_s'])} "
            f"| {dur(row['rto_predicted_s'])} | {dur(row['approval_wait_s'])} |"
        )
    for n, (leg, row) in enumerate(zip(doc["legs"], summary["legs"], strict=True), 1):
        out += ["", f"## Leg {n}: {row['leg']} ({row['mode']})", "", leg_markdown(leg, level=3).rstrip("\n")]
    return "\n".join(out) + "\n"


def _services_table(d: dict[str, Any]) -> str:
    rows = [
        "| service | tier | RTO (to cutover) | target | predicted | met | all done | RPO achieved "
        "| RPO target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in d["services"]:
        met = {True: "yes", False: "**no**", None: "-"}[s["met"]]
        rpo = dur(s["rpo_achieved_s"]) + ("" if s["rpo_met"] is not False else " **(over)**")
        rows.append(
            f"| {s['name']} | {s['tier'] or '-'} | {dur(s['measured_s'])} | {dur(s['rto_target_s'])} "
            f"| {dur(s['predicted_s'])} | {met} | {dur(s['done_s'])} | {rpo} | {dur(s['rpo_target_s'])} |"
        )
    return "\n".join(rows)


def _gantt(d: dict[str, Any]) -> list[str]:
    """Mermaid's Gantt on epoch milliseconds: its axis then reads UTC clock time."""
    out = ["```mermaid", "gantt", "  dateFormat x", "  axisFormat %H:%M:%S", "  todayMarker off"]
    base = _epoch_ms(d["started_at"])
    if base is None:
        return [*out, "```"]
    by_service: dict[str, list[dict[str, Any]]] = {}
    for s in d["steps"]:
        if s["started_s"] is not None and s["finished_s"] is not None:
            by_service.setdefault(s["service"], []).append(s)
    asked = [a for a in d["approvals"] if a["asked_s"] is not None]
    out += ["  section approvals"] if asked else []
    for a in asked:
        start = base + int(a["asked_s"] * 1000)
        end = max(start + 1, base + int(a["answered_s"] * 1000))
        out.append(f"  {_label(a['step'])} :active, {start}, {end}")
    for service, steps in by_service.items():
        out.append(f"  section {_label(service)}")
        for s in steps:
            tag = (
                "crit, "
                if s["state"] == "failed" or s["pivot"]
                else ("done, " if s["state"] == "succeeded" else "")
            )
            start = base + int(s["started_s"] * 1000)
            end = max(start + 1, base + int(s["finished_s"] * 1000))
            name = s["id"].removeprefix(service + ".") + (" PIVOT" if s["pivot"] else "")
            out.append(f"  {_label(name)} :{tag}{start}, {end}")
    return [*out, "```"]


def _label(text: str) -> str:
    return text.replace(":", " ").replace("#", " ").replace(";", " ")


def _epoch_ms(iso: str | None) -> int | None:
    at = epoch(iso)
    return None if at is None else int(at * 1000)


def _check(c: dict[str, Any]) -> str:
    verdict = (
        "skipped"
        if c["skipped"]
        else ("passed" if c["ok"] else ("FAILED" if c["ok"] is False else "not run"))
    )
    why = f" ({c['reason']})" if c["reason"] else (f": {c['message']}" if c["message"] else "")
    at = f" at {clock(c['at'])}" if c["at"] else ""
    return f"- `{c['id']}` {verdict}{at}{why}"


def _step_row(s: dict[str, Any]) -> str:
    started = f"{clock(s['started_at'])} (+{dur(s['started_s'])})" if s["started_at"] else "-"
    note = step_notes(s).replace("|", "/")
    return (
        f"| `{s['id']}` | {started} | {dur(s['duration_s'])} | {s['state']} | {s['attempts']} "
        f"| {dur(s['estimate_s'])} | {note} |"
    )


def _lags(d: dict[str, Any], h: str) -> list[str]:
    lags = [s for s in d["steps"] if s.get("detection_lag_s") is not None]
    if not lags:
        return []
    worst = max(lags, key=lambda s: s["detection_lag_s"])
    mean = sum(s["detection_lag_s"] for s in lags) / len(lags)
    return [
        "",
        f"{h}# Detection lag",
        "",
        f"How long each wait took to notice its change was done, in the sandbox (mean {mean:.2f} s, "
        f"worst {worst['detection_lag_s']:.2f} s at `{worst['id']}`):",
        "",
        "| step | took | lag |",
        "|---|---|---|",
        *(f"| `{s['id']}` | {dur(s['duration_s'])} | {s['detection_lag_s']:.2f}s |" for s in lags),
    ]


def _approval_row(a: dict[str, Any]) -> str:
    answer = "granted" if a["granted"] else "**denied**"
    reason = str(a.get("reason") or "").replace("|", "/")
    return (
        f"| `{a['step']}` | {clock(a['asked_at'])} | {clock(a['answered_at'])} | {dur(a['wait_s'])} "
        f"| {answer} | {a.get('by')} | {reason} |"
    )
