"""A drill's report: its legs (the failover, and the way back) with one summary of both."""

from __future__ import annotations

from typing import Any

from failover.report.data import REPORT_VERSION
from failover.report.text import epoch


def drill_data(legs: list[dict[str, Any]], end_state: str | None = None) -> dict[str, Any]:
    """One document for a drill's runs, in the order they ran. ``end_state``: for a sandbox
    drill that failed back, whether the sandbox ended where it started."""
    first, last = legs[0], legs[-1]
    seen: set[str] = set()
    rows = []
    for leg in legs:
        sc = leg["scenario"]
        undo = leg["run_id"] in seen  # the same run again: the failover undone by its rollback
        seen.add(leg["run_id"])
        rows.append(
            {
                "run_id": leg["run_id"],
                "leg": f"undo of {sc['from']} -> {sc['to']}" if undo else f"{sc['from']} -> {sc['to']}",
                "mode": sc["mode"],
                "status": leg["status"],
                "exit_code": leg["exit_code"],
                "started_at": leg["started_at"],
                "finished_at": leg["finished_at"],
                "rto_measured_s": leg["rto"]["measured_s"],
                "rto_predicted_s": leg["rto"]["predicted_s"],
                "rto_at_cloud_speed_s": leg["rto"]["at_cloud_speed_s"],
                "approval_wait_s": round(sum(a["wait_s"] or 0.0 for a in leg["approvals"]), 3),
            }
        )
    ok = all(leg["status"] == "succeeded" for leg in legs) or (
        len(legs) == 2 and rows[1]["leg"].startswith("undo") and legs[1]["status"] == "rolled_back"
    )
    return {
        "version": REPORT_VERSION,
        "kind": "drill",
        "runbook": first["runbook"],
        "scenario": first["scenario"],
        "environment": first["environment"],
        "summary": {
            "ok": ok,
            "legs": rows,
            "started_at": first["started_at"],
            "finished_at": last["finished_at"],
            "duration_s": _between(first["started_at"], last["finished_at"]),
            "sandbox_end": end_state,
        },
        "legs": legs,
    }


def _between(start: str | None, end: str | None) -> float | None:
    first, last = epoch(start), epoch(end)
    return None if first is None or last is None else round(last - first, 3)
