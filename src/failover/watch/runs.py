"""What a watcher needs to know of runs: which site a runbook's services are active in (so an
automatic failover only moves away from it, and never back), and a run's figures once it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from failover.errors import RefusedError
from failover.plan import Plan
from failover.state.events import RunState
from failover.state.store import StateStore


@dataclass(frozen=True)
class Active:
    """Where the last run that succeeded left a runbook's services."""

    site: str
    previous: str
    run_id: str
    by: str


def active_site(store: StateStore, runbook: str) -> Active | None:
    """The site the newest succeeded run of ``runbook`` moved to (or left, if it was undone);
    None when no run of it succeeded in this state."""
    for row in reversed(store.runs()):
        if row.runbook != runbook:
            continue
        state = RunState.replay(row.run_id, store.events(row.run_id))
        if state.sandbox is not None or state.status not in ("succeeded", "rolled_back"):
            continue
        if state.status == "rolled_back" and not state.undo:
            continue  # a failed run, rolled back: it left things where they were
        scenario = store.run_plan(row.run_id).scenario
        to, from_ = (scenario.from_, scenario.to) if state.undo else (scenario.to, scenario.from_)
        return Active(to, from_, row.run_id, str((state.options or {}).get("by", "")))
    return None


def refuse_unless_away(store: StateStore, runbook: str, trigger: str, from_: str, to: str) -> None:
    """An automatic failover moves away from the active site only, and never fails back."""
    active = active_site(store, runbook)
    if active is None:
        return
    if active.site != from_:
        raise RefusedError(
            f"trigger {trigger} fails over from {from_}, but run {active.run_id} left the services "
            f"active in {active.site}: nothing to move away from"
        )
    if active.by.startswith("watch:") and to == active.previous:
        raise RefusedError(
            f"trigger {trigger} would fail back to {to}, which run {active.run_id} ({active.by}) "
            "failed away from: failback is never automatic; a person runs it"
        )


def figures(store: StateStore, run_id: str) -> dict[str, Any] | None:
    """A run's status, start and last cutover (epoch seconds, as journaled), once it finished;
    None before."""
    state = RunState.replay(run_id, store.events(run_id))
    if not state.finished:
        return None
    plan: Plan = store.run_plan(run_id)
    steps = [s for s in plan.steps if s.cutover] or list(plan.steps)
    ends = [at for s in steps if (at := state.step(s.id).finished_at) is not None]
    return {"status": state.status, "started_at": state.started_at, "cutover_at": max(ends, default=None)}
