"""A run's report as data, from the plan and the journal's events only: what happened and when
(UTC), the RTO as defined below, the achieved RPO, each approval and how long it waited.

RTO: from the run's start (``run_started``: preflight included, as an outage's clock does not stop
for checks) to a service's cutover, the end of its steps marked ``cutover`` (by default its last
actions on the target site). The run's RTO is its last cutover. Steps no cutover waits for (drains
of the old site, checks after the move) are reported after it. Clients may still resolve the old
site for the TTL of the DNS records the plan changed: shown next to the RTO, not added to it.
RPO achieved: the lag a replica-lag check saw last before its service's pivot (or cutover).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from failover.plan import Plan, PlannedStep
from failover.redact import redact, secret_values_in
from failover.state.chain import GENESIS
from failover.state.events import Event, RunState

REPORT_VERSION = 2
RTO_DEFINITION = (
    "from the run's start (preflight included) to each service's cutover (its steps marked "
    "cutover, else its last actions on the target site); the run's RTO is the last cutover"
)


def report_data(
    plan: Plan,
    state: RunState,
    events: list[Event],
    arrivals: Mapping[str, float] | None = None,
    lag_checks: Collection[str] = (),
) -> dict[str, Any]:
    """The report of one run as JSON-ready data. ``arrivals``: when a sandbox's resources got where
    they were asked (by identity, wall-clock), for each step's detection lag. ``lag_checks``: the
    checks whose observation is a replica's lag in seconds (the achieved RPO)."""
    t0 = state.started_at if state.started_at is not None else (events[0].at if events else 0.0)
    seen = _observations(events)
    steps = [_step(step, state, t0, arrivals or {}, seen.get(step.id)) for step in plan.steps]
    after = _after_cutover(plan)
    for s in steps:
        s["after_cutover"] = s["id"] in after
    cut = [s for s in steps if s["cutover"]]
    measured = _rto(cut, steps, state)
    recorded = state.options or {}
    speed = recorded.get("sandbox_speed")
    speed = float(speed) if isinstance(speed, int | float) else None
    dns = _dns(plan, steps)
    checks = [_check(c, state, t0) for c in plan.preflight]
    services = _services(plan, steps, checks, lag_checks)
    lags = [s["rpo_achieved_s"] for s in services if s["rpo_achieved_s"] is not None]
    doc = {
        "version": REPORT_VERSION,
        "run_id": state.run_id,
        "runbook": plan.runbook.name,
        "fingerprint": plan.fingerprint,
        "scenario": plan.scenario.model_dump(mode="json", by_alias=True),
        "status": state.status,
        "exit_code": state.exit_code,
        "message": state.message,
        "started_at": iso(state.started_at),
        "finished_at": iso(state.finished_at),
        "duration_s": _since(t0, state.finished_at),
        "environment": {
            "sandbox": state.sandbox,
            "sandbox_speed": speed,
            "faults": [str(f) for f in recorded.get("faults") or []],  # type: ignore[attr-defined]
            "sim_speed": recorded.get("sim_speed"),
        },
        "rto": {
            "definition": RTO_DEFINITION,
            "target_s": plan.rto_target_s,
            "predicted_s": plan.predicted_rto_s,
            "measured_s": measured,
            "cutover_at": iso(None if measured is None else t0 + measured),
            "done_s": _done(steps, state),
            "predicted_done_s": plan.predicted_done_s,
            "sandbox_speed": speed,
            "at_cloud_speed_s": None if measured is None or speed is None else round(measured * speed, 3),
            "dns": dns,
            "old_site_resolvable_until_s": max(
                (d["until_s"] for d in dns if d["until_s"] is not None), default=None
            ),
        },
        "rpo": {"achieved_s": max(lags) if lags else None},
        "services": services,
        "preflight": checks,
        "steps": steps,
        "approvals": _approvals(events, t0),
        "rollback": [s["id"] for s in steps if s["compensated"]],
        "best_effort_failures": list(state.best_effort_failures),
        "stopped_by": None if state.stopped_by is None else _stopped(state.stopped_by, t0),
        "sandbox": state.sandbox,
        "journal": {"events": len(events), "head": events[-1].hash if events else GENESIS},
    }
    known = secret_values_in([c.params for c in plan.preflight] + [s.params for s in plan.steps])
    return dict(redact(doc, known=known))


def iso(at: float | None) -> str | None:
    """UTC wall-clock time to the millisecond, ISO 8601."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _since(t0: float, at: float | None) -> float | None:
    return None if at is None else round(at - t0, 3)


def _stopped(found: dict[str, object], t0: float) -> dict[str, object]:
    """The stop condition that stopped the run: which check, where, what it saw, and when."""
    at = found.get("at")
    when = float(at) if isinstance(at, int | float) else None
    return {**{k: v for k, v in found.items() if k != "at"}, "at": iso(when), "at_s": _since(t0, when)}


def _observations(events: Iterable[Event]) -> dict[str, tuple[object, float]]:
    """What each verify step saw last (its result), and when."""
    return {
        e.step: (e.data["result"], e.at)
        for e in events
        if e.step is not None and e.kind == "step_succeeded" and "result" in e.data
    }


def _step(
    step: PlannedStep,
    state: RunState,
    t0: float,
    arrivals: Mapping[str, float],
    observed: tuple[object, float] | None,
) -> dict[str, Any]:
    rec = state.step(step.id)
    return {
        "id": step.id,
        "service": step.service,
        "kind": step.kind,
        "action": step.action,
        "site": step.site,
        "description": step.description,
        "state": rec.state,
        "attempts": rec.attempts,
        "started_at": iso(rec.started_at),
        "finished_at": iso(rec.finished_at),
        "started_s": None if rec.started_at is None else _since(t0, rec.started_at),
        "finished_s": _since(t0, rec.finished_at),
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
        "compensated_s": _since(t0, rec.compensated_at),
        "pivot": step.pivot,
        "cutover": step.cutover,
        "observed": None if observed is None else observed[0],
        "observed_s": None if observed is None else _since(t0, observed[1]),
        "detection_lag_s": _lag(step, rec.started_at, rec.finished_at, arrivals),
    }


def _check(check: Any, state: RunState, t0: float) -> dict[str, Any]:
    rec = state.checks.get(check.id)
    return {
        "id": check.id,
        "service": check.service,
        "check": check.check,
        "site": check.site,
        "description": check.description,
        "ok": None if rec is None else rec.ok,
        "skipped": check.skipped if rec is None else rec.skipped,
        "reason": None if rec is None else rec.reason,
        "observed": None if rec is None else rec.observed,
        "message": "" if rec is None else rec.message,
        "best_effort": check.best_effort,
        "at": None if rec is None else iso(rec.at),
        "at_s": None if rec is None else _since(t0, rec.at),
    }


def _after_cutover(plan: Plan) -> set[str]:
    """Steps that no cutover waits for: they come after the RTO (drains, checks after the move)."""
    needed: set[str] = set()
    todo = [s.id for s in plan.steps if s.cutover]
    by_id = plan.steps_by_id
    while todo:
        sid = todo.pop()
        if sid not in needed:
            needed.add(sid)
            todo.extend(by_id[sid].after)
    return {s.id for s in plan.steps if s.id not in needed} if needed else set()


def _ok(step: dict[str, Any]) -> bool:
    """Done, or a best-effort step that failed: the service moved without it."""
    return step["state"] in ("succeeded", "skipped") or (step["state"] == "failed" and step["best_effort"])


def _rto(cut: list[dict[str, Any]], steps: list[dict[str, Any]], state: RunState) -> float | None:
    """Seconds from the run's start to its last cutover, once every cutover is done."""
    if state.status != "succeeded":
        return None
    ends = [s["finished_s"] for s in (cut or steps) if s["finished_s"] is not None]
    return max(ends) if ends else 0.0


def _done(steps: list[dict[str, Any]], state: RunState) -> float | None:
    ends = [s["finished_s"] for s in steps if s["finished_s"] is not None]
    return (max(ends) if ends else 0.0) if state.status == "succeeded" else None


def _services(
    plan: Plan, steps: list[dict[str, Any]], checks: list[dict[str, Any]], lag_checks: Collection[str]
) -> list[dict[str, Any]]:
    out = []
    for svc in plan.services:
        own = [s for s in steps if s["service"] == svc.name]
        complete = all(_ok(s) for s in own)
        cut = [s for s in own if s["cutover"]] or own
        ends = [s["finished_s"] for s in cut if s["finished_s"] is not None]
        measured = (max(ends) if ends else 0.0) if complete and all(_ok(s) for s in cut) else None
        done = [s["finished_s"] for s in own if s["finished_s"] is not None]
        lag = _achieved_rpo(own, [c for c in checks if c["service"] == svc.name], lag_checks)
        out.append(
            {
                "name": svc.name,
                "tier": svc.tier,
                "rto_target_s": svc.rto_target_s,
                "predicted_s": svc.predicted_s,
                "measured_s": measured,
                "cutover": list(svc.cutover),
                "done_s": (max(done) if done else 0.0) if complete else None,
                "met": None if measured is None or svc.rto_target_s is None else measured <= svc.rto_target_s,
                "rpo_target_s": svc.rpo_target_s,
                "rpo_achieved_s": None if lag is None else lag[0],
                "rpo_seen_by": None if lag is None else lag[1],
                "rpo_met": (None if lag is None or svc.rpo_target_s is None else lag[0] <= svc.rpo_target_s),
            }
        )
    return out


def _achieved_rpo(
    own: list[dict[str, Any]], checks: list[dict[str, Any]], lag_checks: Collection[str]
) -> tuple[float, str] | None:
    """The lag (seconds) a replica-lag check of the service saw last before its first pivot (or
    cutover) started, and which check saw it."""
    marks = [s["started_s"] for s in own if (s["pivot"] or s["cutover"]) and s["started_s"] is not None]
    before = min(marks) if marks else None
    seen = [
        (at, value, sid)
        for at, value, sid in [
            *((c["at_s"], c["observed"], c["id"]) for c in checks if c["check"] in lag_checks),
            *((s["observed_s"], s["observed"], s["id"]) for s in own if s["action"] in lag_checks),
        ]
        if at is not None
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and (before is None or at <= before)
    ]
    if not seen:
        return None
    _, value, sid = max(seen, key=lambda x: x[0])
    return float(value), sid


def _dns(plan: Plan, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The DNS changes the run made: how long resolvers may answer with the old site after each."""
    by_id = {s["id"]: s for s in steps}
    out = []
    for step in plan.steps:
        if step.dns_ttl_s is None or step.skipped:
            continue
        end = by_id[step.id]["finished_s"] if by_id[step.id]["state"] == "succeeded" else None
        out.append(
            {
                "step": step.id,
                "ttl_s": step.dns_ttl_s,
                "changed_s": end,
                "until_s": None if end is None else round(end + step.dns_ttl_s, 3),
            }
        )
    return out


def _approvals(events: Iterable[Event], t0: float) -> list[dict[str, Any]]:
    """Each approval: when it was asked, when and how it was answered, by whom, how long it waited."""
    asked: dict[str, float] = {}
    out = []
    for e in events:
        if e.step is None:
            continue
        if e.kind == "approval_requested":
            asked[e.step] = e.at
        elif e.kind in ("approval_granted", "approval_denied"):
            start = asked.pop(e.step, None)
            extra = {k: v for k, v in e.data.items() if k not in ("by", "reason")}
            out.append(
                {
                    "step": e.step,
                    "granted": e.kind == "approval_granted",
                    "by": e.data.get("by"),
                    "reason": e.data.get("reason"),
                    "asked_at": iso(start),
                    "answered_at": iso(e.at),
                    "asked_s": None if start is None else _since(t0, start),
                    "answered_s": _since(t0, e.at),
                    "wait_s": None if start is None else round(e.at - start, 3),
                    **extra,
                }
            )
    return out


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
