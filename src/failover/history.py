"""The history of a runbook's runs, from the journal: measured RTO per service and overall,
predicted against measured, and the trend from one drill to the next. Every string in it is
redacted (by value and shape: its keys are names of services and directions)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from failover.durations import format_duration
from failover.redact import redact_strings
from failover.report import report_data
from failover.state import DEFAULT_STATE, is_remote, open_store
from failover.state.events import Event, RunState
from failover.state.local import JOURNAL_FILE
from failover.state.store import StateStore

HISTORY_VERSION = 1


def journals(state: str, sandbox: bool) -> list[StateStore]:
    """The store ``state`` names, or (``sandbox``) the local stores of its sandbox drills, one per
    drill (a sandbox drill always keeps its state in a directory: ``.failover/sandbox`` when the
    state is remote)."""
    if not sandbox:
        if not is_remote(state) and Path(state).is_dir() and not (Path(state) / JOURNAL_FILE).exists():
            return []  # a state directory with no run in it yet
        return [open_store(state, read_only=True)]
    root = sandbox_root(state)
    drills = sorted(d for d in root.iterdir() if (d / JOURNAL_FILE).is_file()) if root.is_dir() else []
    return [open_store(d, read_only=True) for d in drills]


def sandbox_root(state: str) -> Path:
    """Where sandbox drills keep their state: under the state directory, or under ``.failover``
    when the state is remote."""
    return Path(DEFAULT_STATE if is_remote(state) else state) / "sandbox"


def history(runbook: str, sources: Iterable[StateStore], triggers: Iterable[str] = ()) -> dict[str, Any]:
    """Every finished run of ``runbook`` in ``sources``, oldest first, with per service figures,
    and the incidents its ``triggers`` fired on, with their MTTD and MTTR."""
    runs: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    for journal in sources:
        incidents += _incidents(journal, runbook, triggers)
        for run_id, _, name, created in journal.runs():
            if name != runbook:
                continue
            events = journal.events(run_id)
            state = RunState.replay(run_id, events)
            if not state.finished:
                continue
            undone = state.undo and state.status == "rolled_back"
            if undone:  # the failover as it ended, before it was undone (failback: rollback)
                events = _before_undo(events)
                state = RunState.replay(run_id, events)
            data = report_data(journal.run_plan(run_id), state, events)
            runs.append({**_summary(data), "undone": undone, "created_at": created})
    runs.sort(key=lambda r: (r["created_at"], r["run_id"]))
    for run in runs:
        del run["created_at"]
    incidents.sort(key=lambda i: i["fired_at"] or "")
    doc = {
        "version": HISTORY_VERSION,
        "runbook": runbook,
        "runs": runs,
        "services": _services(runs),
        "incidents": incidents,
    }
    return dict(redact_strings(doc))


def _incidents(journal: StateStore, runbook: str, triggers: Iterable[str]) -> list[dict[str, Any]]:
    """What the watchers kept of each trigger's incidents: its times (UTC) and the figures."""
    from failover.report.data import iso
    from failover.watch.records import TriggerRecord, incident_figures, record_name

    found = []
    for trigger in triggers:
        for incident in TriggerRecord.read(journal, record_name(runbook, trigger)).incidents:
            times = ("first_bad_at", "fired_at", "run_started_at", "cutover_at", "recovered_at")
            found.append(
                {
                    **{k: v for k, v in incident.items() if k not in times},
                    **{k: iso(incident.get(k)) for k in times},
                    **incident_figures(incident),
                }
            )
    return found


def _before_undo(events: list[Event]) -> list[Event]:
    """The events of a run up to the resume that undid it."""
    undo = next(i for i, e in enumerate(events) if e.kind == "rollback_started" and e.data.get("undo"))
    return events[: max(i for i in range(undo) if events[i].kind == "run_resumed")]


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    scenario = data["scenario"]
    return {
        "run_id": data["run_id"],
        "started_at": data["started_at"],
        "direction": f"{scenario['from']} -> {scenario['to']}",
        "mode": scenario.get("mode", "graceful"),
        "status": data["status"],
        "rto": data["rto"],
        "services": {
            s["name"]: {
                "measured_s": s["measured_s"],
                "predicted_s": s["predicted_s"],
                "target_s": s["rto_target_s"],
            }
            for s in data["services"]
        },
    }


def _services(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per direction and service: the last measured RTO, the median of the runs before it, and
    the trend between them (succeeded runs only)."""
    found: dict[str, Any] = {}
    ok = [r for r in runs if r["status"] == "succeeded"]
    for direction in sorted({r["direction"] for r in ok}):
        these = [r for r in ok if r["direction"] == direction]
        names = sorted({name for r in these for name in r["services"]} | {"(overall)"})
        rows = {}
        for name in names:
            series = [
                r["rto"]["measured_s"]
                if name == "(overall)"
                else r["services"].get(name, {}).get("measured_s")
                for r in these
            ]
            measured = [v for v in series if v is not None]
            last = these[-1]
            figures = last["rto"] if name == "(overall)" else last["services"].get(name, {})
            rows[name] = {
                "runs": len(measured),
                "last_s": measured[-1] if measured else None,
                "previous_median_s": statistics.median(measured[:-1]) if len(measured) > 1 else None,
                "predicted_s": figures.get("predicted_s"),
                "target_s": figures.get("target_s"),
                "trend": _trend(measured),
            }
        found[direction] = rows
    return found


def _trend(measured: list[float]) -> str:
    """``faster``, ``slower`` or ``steady`` (within 10% or 1 s) against the median of the runs
    before the last; ``first`` with one run."""
    if len(measured) < 2:
        return "first" if measured else "-"
    before, last = statistics.median(measured[:-1]), measured[-1]
    if abs(last - before) <= max(1.0, 0.1 * before):
        return "steady"
    return "faster" if last < before else "slower"


def _dur(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def _table(header: list[str], rows: list[list[str]], left: int) -> list[str]:
    """Columns as wide as their widest cell; the first ``left`` left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(header), *(line(r).rstrip() for r in rows)]


def render_history(data: dict[str, Any]) -> str:
    """Plain text: the runs, then per direction the services' last, previous and predicted RTO."""
    data = redact_strings(data)
    lines = [f"History of {data['runbook']}: {len(data['runs'])} finished runs"]
    if not data["runs"] and not data["incidents"]:
        lines.append("(none in this journal: sandbox drills are read with --sandbox)")
        return "\n".join(lines) + "\n"
    rows = [
        [
            r["run_id"],
            r["direction"],
            r["started_at"] or "-",
            r["mode"],
            r["status"] + (", undone" if r["undone"] else ""),
        ]
        + [_dur(r["rto"][k]) for k in ("measured_s", "predicted_s", "target_s")]
        for r in data["runs"]
    ]
    lines += [
        "",
        *_table(["run", "direction", "started", "mode", "status", "RTO", "predicted", "target"], rows, 5),
    ]
    for direction, services in data["services"].items():
        rows = []
        for name, row in services.items():
            last, target = row["last_s"], row["target_s"]
            missed = "  MISSED TARGET" if target is not None and last is not None and last > target else ""
            figures = (last, row["previous_median_s"], row["predicted_s"], target)
            rows.append([name, row["trend"] + missed, str(row["runs"]), *map(_dur, figures)])
        header = ["service", "trend", "runs", "last", "median before", "predicted", "target"]
        lines += ["", f"{direction}, succeeded runs:", *_table(header, rows, 2)]
    if data["incidents"]:
        phases = ("time_to_detect_s", "time_to_decide_s", "time_to_cutover_s", "time_to_recover_s")
        rows = [
            [i["trigger"], i["fired_at"] or "-", i.get("run_id") or "-", *(_dur(i[p]) for p in phases)]
            for i in data["incidents"]
        ]
        header = ["trigger", "fired", "run", "to detect", "to decide", "to cut over", "to recover"]
        lines += ["", "Incidents the watchers fired on:", *_table(header, rows, 3)]
    return "\n".join(lines) + "\n"
