"""Run reports: what happened, measured RTO per service against target and prediction.

Built from the plan and the journal's events only, so a report can be made at any time after
(or during) a run: Markdown with a Mermaid Gantt chart, JSON, and JUnit XML for CI systems.
Every string in a report is redacted: registered secrets, the values under secret-looking keys of
the plan's parameters (where a description or an error quotes them), and whatever looks like a
credential.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

from failover.durations import format_duration
from failover.formats import REPORT_FORMATS as REPORT_FORMATS
from failover.formats import ReportFormat
from failover.plan import Plan, PlannedStep
from failover.redact import redact, secret_values_in
from failover.state.chain import GENESIS
from failover.state.events import Event, RunState

REPORT_VERSION = 1


def report_data(
    plan: Plan, state: RunState, events: list[Event], arrivals: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """The report as JSON-ready data. ``arrivals``: when a sandbox's resources got where they were
    asked (by identity, wall-clock), for each step's detection lag."""
    start = next((e.at for e in events if e.kind == "preflight_passed"), state.started_at or 0.0)
    steps: list[dict[str, Any]] = []
    for step in plan.steps:
        rec = state.step(step.id)
        steps.append(
            {
                "id": step.id,
                "service": step.service,
                "kind": step.kind,
                "site": step.site,
                "description": step.description,
                "state": rec.state,
                "attempts": rec.attempts,
                "started_s": None if rec.started_at is None else round(rec.started_at - start, 3),
                "finished_s": None if rec.finished_at is None else round(rec.finished_at - start, 3),
                "duration_s": (
                    None
                    if rec.started_at is None or rec.finished_at is None
                    else round(rec.finished_at - rec.started_at, 3)
                ),
                "estimate_s": step.estimate_s,
                "error": rec.error if rec.state == "failed" else None,
                "best_effort": rec.best_effort,
                "in_doubt": rec.in_doubt,
                "approved_by": rec.approved_by,
                "compensated": rec.compensated_at is not None,
                "pivot": step.pivot,
                "detection_lag_s": _lag(step, rec.started_at, rec.finished_at, arrivals or {}),
            }
        )
    by_service: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        by_service.setdefault(s["service"], []).append(s)
    services = []
    for svc in plan.services:
        own = by_service.get(svc.name, [])
        finished = [s["finished_s"] for s in own if s["finished_s"] is not None]
        complete = all(s["state"] in ("succeeded", "skipped") or _tolerated(s) for s in own)
        measured = (
            max(finished)
            if finished and complete
            else (0.0 if not own and state.status == "succeeded" else None)
        )
        services.append(
            {
                "name": svc.name,
                "tier": svc.tier,
                "rto_target_s": svc.rto_target_s,
                "predicted_s": svc.predicted_s,
                "measured_s": measured,
                "met": None if measured is None or svc.rto_target_s is None else measured <= svc.rto_target_s,
            }
        )
    recorded = (state.options or {}).get("sandbox_speed")
    speed = float(recorded) if isinstance(recorded, int | float) else None  # the sandbox's time model
    finished_steps = [s["finished_s"] for s in steps if s["finished_s"] is not None]
    overall = max(finished_steps) if finished_steps and state.status == "succeeded" else None
    checks = [
        {
            "id": c.id,
            "site": c.site,
            "description": c.description,
            "ok": state.checks[c.id].ok if c.id in state.checks else None,
            "skipped": state.checks[c.id].skipped if c.id in state.checks else c.skipped,
            "reason": state.checks[c.id].reason if c.id in state.checks else None,
            "observed": state.checks[c.id].observed if c.id in state.checks else None,
            "message": state.checks[c.id].message if c.id in state.checks else "",
            "best_effort": c.best_effort,
        }
        for c in plan.preflight
    ]
    doc = {
        "version": REPORT_VERSION,
        "run_id": state.run_id,
        "runbook": plan.runbook.name,
        "fingerprint": plan.fingerprint,
        "scenario": plan.scenario.model_dump(mode="json", by_alias=True),
        "status": state.status,
        "exit_code": state.exit_code,
        "message": state.message,
        "started_at": _iso(state.started_at),
        "finished_at": _iso(state.finished_at),
        "rto": {
            "target_s": plan.rto_target_s,
            "predicted_s": plan.predicted_rto_s,
            "measured_s": overall,
            "sandbox_speed": speed,
            "at_cloud_speed_s": None if overall is None or speed is None else round(overall * speed, 3),
        },
        "services": services,
        "preflight": checks,
        "steps": steps,
        "approvals": state.approvals,
        "rollback": [s["id"] for s in steps if s["compensated"]],
        "best_effort_failures": list(state.best_effort_failures),
        "sandbox": state.sandbox,
        "journal": {"events": len(events), "head": events[-1].hash if events else GENESIS},
    }
    known = secret_values_in([c.params for c in plan.preflight] + [s.params for s in plan.steps])
    return dict(redact(doc, known=known))


def _lag(
    step: PlannedStep, started: float | None, finished: float | None, arrivals: Mapping[str, float]
) -> float | None:
    """Seconds between the step's resources getting where it asked (in the sandbox) and the step
    noticing it, or None."""
    if started is None or finished is None:
        return None
    reached = [arrivals[key] for key in map(_open_account, step.resources) if key in arrivals]
    reached = [at for at in reached if started <= at <= finished]
    return round(finished - max(reached), 3) if reached else None


def _open_account(identity: str) -> str:
    """An ARN with its account left open, as the sandbox keys what it changes."""
    parts = identity.split(":", 5)
    if identity.startswith("arn:") and len(parts) == 6 and parts[4]:
        parts[4] = "*"
    return ":".join(parts)


def _tolerated(step: dict[str, Any]) -> bool:
    """A best-effort step that failed: the service moved without it."""
    return bool(step["state"] == "failed" and step["best_effort"])


def _iso(at: float | None) -> str | None:
    return None if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _model(rto: dict[str, Any]) -> str:
    """What a sandbox's measured RTO comes to at the clouds' speed, under its time model."""
    if rto.get("at_cloud_speed_s") is None:
        return ""
    return (
        f" ({_dur(rto['at_cloud_speed_s'])} at the clouds' speed: the sandbox ran x{rto['sandbox_speed']:g})"
    )


def _dur(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def render_report(data: dict[str, Any], fmt: ReportFormat) -> str:
    """The report in one of :data:`REPORT_FORMATS`, every string redacted."""
    data = redact(data)
    if fmt == "json":
        return json.dumps(data, indent=2, default=str) + "\n"
    if fmt == "junit":
        return _junit(data)
    return _markdown(data)


def _markdown(d: dict[str, Any]) -> str:
    sc = d["scenario"]
    out = [
        f"# Drill report: {d['runbook']}, {sc['from']} -> {sc['to']} ({sc['mode']})",
        "",
        f"- run `{d['run_id']}`: **{d['status']}** (exit {d['exit_code']}): {d['message']}",
        f"- started {d['started_at']}, finished {d['finished_at']}",
        f"- RTO measured {_dur(d['rto']['measured_s'])}{_model(d['rto'])}, predicted "
        f"{_dur(d['rto']['predicted_s'])}, target {_dur(d['rto']['target_s'])}",
        f"- plan fingerprint `{d['fingerprint']}`; journal: {d['journal']['events']} events, chain "
        f"head `{d['journal']['head']}` (`failover audit {d['run_id']} --head {d['journal']['head']}`)",
        *(
            [
                f"- **{len(d['best_effort_failures'])} best-effort failures** (the run went on past them): "
                + ", ".join(f"`{f}`" for f in d["best_effort_failures"])
            ]
            if d["best_effort_failures"]
            else []
        ),
        *([f"- sandbox drill: {d['sandbox']}"] if d["sandbox"] else []),
        "",
        "## Services",
        "",
        "| service | tier | measured RTO | target | predicted | met |",
        "|---|---|---|---|---|---|",
    ]
    for s in d["services"]:
        met = {True: "yes", False: "**no**", None: "-"}[s["met"]]
        out.append(
            f"| {s['name']} | {s['tier'] or '-'} | {_dur(s['measured_s'])} | {_dur(s['rto_target_s'])} "
            f"| {_dur(s['predicted_s'])} | {met} |"
        )
    out += ["", "## Timeline", "", "```mermaid", "gantt", "  dateFormat x", "  axisFormat %M:%S"]
    for service, steps in _group(d["steps"]).items():
        timed = [s for s in steps if s["started_s"] is not None and s["finished_s"] is not None]
        if not timed:
            continue
        out.append(f"  section {service}")
        for s in timed:
            tag = "crit, " if s["state"] == "failed" else ("done, " if s["state"] == "succeeded" else "")
            start_ms = int(s["started_s"] * 1000)
            end_ms = max(start_ms + 1, int(s["finished_s"] * 1000))
            label = s["id"].removeprefix(service + ".").replace(":", " ")
            out.append(f"  {label} :{tag}{start_ms}, {end_ms}")
    out += ["```", "", "## Preflight checks", ""]
    for c in d["preflight"]:
        verdict = (
            "skipped"
            if c["skipped"]
            else ("passed" if c["ok"] else ("FAILED" if c["ok"] is False else "not run"))
        )
        why = f" ({c['reason']})" if c["reason"] else (f": {c['message']}" if c["message"] else "")
        out.append(f"- `{c['id']}` {verdict}{why}")
    out += [
        "",
        "## Steps",
        "",
        "| step | state | attempts | took | estimate | note |",
        "|---|---|---|---|---|---|",
    ]
    for s in d["steps"]:
        note = s["error"] or (f"approved by {s['approved_by']}" if s["approved_by"] else "")
        if s["compensated"]:
            note = (note + "; " if note else "") + "compensated"
        out.append(
            f"| `{s['id']}` | {s['state']} | {s['attempts']} | {_dur(s['duration_s'])} | "
            f"{_dur(s['estimate_s'])} | {note.replace('|', '/')} |"
        )
    lags = [s for s in d["steps"] if s.get("detection_lag_s") is not None]
    if lags:
        worst = max(lags, key=lambda s: s["detection_lag_s"])
        mean = sum(s["detection_lag_s"] for s in lags) / len(lags)
        out += [
            "",
            "## Detection lag",
            "",
            f"How long each wait took to notice its change was done, in the sandbox (mean {mean:.2f} s, "
            f"worst {worst['detection_lag_s']:.2f} s at `{worst['id']}`):",
            "",
            "| step | took | lag |",
            "|---|---|---|",
            *(f"| `{s['id']}` | {_dur(s['duration_s'])} | {s['detection_lag_s']:.2f}s |" for s in lags),
        ]
    if d["approvals"]:
        out += ["", "## Approvals", ""]
        for a in d["approvals"]:
            verdict = "granted" if a["granted"] else "denied"
            out.append(f"- `{a['step']}`: {verdict} by {a.get('by')} ({a.get('reason')})")
    if d["rollback"]:
        out += [
            "",
            "## Rollback",
            "",
            "Compensated, in this order: " + " -> ".join(f"`{r}`" for r in d["rollback"]),
        ]
    return "\n".join(out) + "\n"


def _group(steps: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        out.setdefault(s["service"], []).append(s)
    return out


def _junit(d: dict[str, Any]) -> str:
    cases = []
    for c in d["preflight"]:
        case = ET.Element("testcase", classname=f"{d['runbook']}.preflight", name=c["id"], time="0")
        if c["skipped"] or c["ok"] is None:
            ET.SubElement(case, "skipped", message=c["reason"] or "not run")
        elif not c["ok"]:
            what = f"{c['message']} (observed {c['observed']!r})"
            ET.SubElement(case, "failure", message=("best-effort: " if c["best_effort"] else "") + what)
        cases.append(case)
    for s in d["steps"]:
        case = ET.Element(
            "testcase",
            classname=f"{d['runbook']}.{s['service']}",
            name=s["id"],
            time=str(s["duration_s"] or 0),
        )
        if s["state"] == "failed":
            what = s["error"] or "failed"
            ET.SubElement(case, "failure", message=("best-effort: " if s["best_effort"] else "") + what)
        elif s["state"] in ("pending", "skipped"):
            ET.SubElement(case, "skipped", message="skipped" if s["state"] == "skipped" else "not run")
        cases.append(case)
    suite = ET.Element(
        "testsuite",
        name=f"failover {d['runbook']} {d['scenario']['from']}->{d['scenario']['to']}",
        tests=str(len(cases)),
        failures=str(sum(1 for c in cases if c.find("failure") is not None)),
        skipped=str(sum(1 for c in cases if c.find("skipped") is not None)),
        time=str(d["rto"]["measured_s"] or 0),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", d["run_id"]),
        ("plan_fingerprint", d["fingerprint"]),
        ("journal_events", str(d["journal"]["events"])),
        ("journal_head", d["journal"]["head"]),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    suite.extend(cases)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
