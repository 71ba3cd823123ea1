"""Sentences every rendering of a report shares: its title, what it ran against, its headline
figures, and how times and durations read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from failover.durations import format_duration


def dur(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def epoch(iso: str | None) -> float | None:
    """Seconds since the epoch of a report's UTC time."""
    return None if iso is None else datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def clock(iso: str | None) -> str:
    """The time of day of a report's UTC time: ``21:58:05.120``."""
    return "-" if iso is None else iso.split("T", 1)[-1].removesuffix("Z")


def title(d: dict[str, Any]) -> str:
    sc = d["scenario"]
    env = d["environment"]
    kind = "Drill report" if env["sandbox"] or env["sim_speed"] else "Failover report"
    return f"{kind}: {d['runbook']}, {sc['from']} -> {sc['to']} ({sc['mode']})"


def environment(env: dict[str, Any]) -> list[str]:
    """What the run ran against, when it was not the clouds at their own speed."""
    out = []
    if env["sandbox"]:
        out.append(f"**Sandbox drill**, not the clouds: {env['sandbox']}.")
        if env["sandbox_speed"]:
            out.append(
                f"Times are the sandbox's: its resources moved x{env['sandbox_speed']:g} the clouds' "
                "speed (the RTO at the clouds' speed is given beside)."
            )
    if env["faults"]:
        out.append("Faults rehearsed: " + ", ".join(f"`{f}`" for f in env["faults"]) + ".")
    if env["sim_speed"]:
        out.append(
            f"Simulated latencies ran x{env['sim_speed']:g} faster: the times below are not a real "
            "failover's."
        )
    return out


def headline(d: dict[str, Any]) -> list[str]:
    """The run's outcome and figures, a line each."""
    rto = d["rto"]
    out = [
        f"run `{d['run_id']}`: **{d['status']}** (exit {d['exit_code']}): {d['message']}",
        f"started {d['started_at']}, finished {d['finished_at']} (took {dur(d['duration_s'])})",
        f"**RTO {dur(rto['measured_s'])}**"
        + (f" (cutover at {rto['cutover_at']})" if rto["cutover_at"] else "")
        + _model(rto)
        + f"; predicted {dur(rto['predicted_s'])}, target {dur(rto['target_s'])}. RTO: {rto['definition']}",
    ]
    dns = [x for x in rto["dns"] if x["until_s"] is not None]
    if dns:
        worst = max(dns, key=lambda x: x["until_s"])
        out.append(
            f"DNS: resolvers may answer with the old site until {dur(worst['until_s'])} into the run "
            f"({dur(worst['ttl_s'])} TTL of the records `{worst['step']}` changed), on top of the RTO"
        )
    stop = d.get("stopped_by")
    if stop:
        out.append(
            f"**stopped by stop condition `{stop['check']}`** at {stop['site']}, {stop['at']} "
            f"(+{dur(stop['at_s'])}): {stop['message']} (observed {stop['observed']!r})"
        )
    done, measured = rto["done_s"], rto["measured_s"]
    drains = rto["predicted_done_s"] > rto["predicted_s"]  # the plan has steps after its last cutover
    if done is not None and measured is not None and done > measured and (drains or done - measured >= 1):
        out.append(
            f"all steps done at {dur(rto['done_s'])} (predicted {dur(rto['predicted_done_s'])}): "
            "what ran after the cutover does not count in the RTO"
        )
    lagged = [s for s in d["services"] if s["rpo_achieved_s"] is not None]
    if lagged:
        worst_rpo = max(lagged, key=lambda s: s["rpo_achieved_s"])
        out.append(
            f"RPO achieved {dur(worst_rpo['rpo_achieved_s'])} (the replication lag "
            f"`{worst_rpo['rpo_seen_by']}` saw last before {worst_rpo['name']}'s pivot; at most the "
            "data written in that time is lost)"
        )
    out.append(
        f"plan fingerprint `{d['fingerprint']}`; journal: {d['journal']['events']} events, chain head "
        f"`{d['journal']['head']}` (`failover audit {d['run_id']} --head {d['journal']['head']}`)"
    )
    if d["best_effort_failures"]:
        out.append(
            f"**{len(d['best_effort_failures'])} best-effort failures** (the run went on past them): "
            + ", ".join(f"`{f}`" for f in d["best_effort_failures"])
        )
    return out


def step_notes(s: dict[str, Any]) -> str:
    """What a step's row says beside its times: its error or approver, and what kind of step."""
    notes = [s["error"] or (f"approved by {s['approved_by']}" if s["approved_by"] else "")]
    notes += ["PIVOT"] if s["pivot"] else []
    notes += ["cutover"] if s["cutover"] else []
    notes += ["after cutover"] if s["after_cutover"] else []
    notes += ["compensated"] if s["compensated"] else []
    return "; ".join(n for n in notes if n)


def _model(rto: dict[str, Any]) -> str:
    """What a sandbox's measured RTO comes to at the clouds' speed, under its time model."""
    if rto.get("at_cloud_speed_s") is None:
        return ""
    return (
        f" = {dur(rto['at_cloud_speed_s'])} at the clouds' speed (the sandbox ran x{rto['sandbox_speed']:g})"
    )
