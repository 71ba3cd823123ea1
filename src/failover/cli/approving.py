"""Answering a waiting approval from another terminal or machine: ``approve`` and ``deny``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from failover.cli.app import handle_errors, main, state_of, state_opt, who
from failover.errors import RefusedError, ScenarioError


def _answer(run_id: str, step: str, granted: bool, reason: str | None, state: str | None) -> None:
    from failover.engine.contexts import Contexts
    from failover.engine.identity import cloud_callers
    from failover.engine.options import Options
    from failover.engine.remote import answer, describe, latest_request, started_by
    from failover.providers import default_registry
    from failover.state import open_store
    from failover.state.events import RunState

    store = open_store(state_of(state))
    events = store.events(run_id)
    if not events:
        raise ScenarioError(f"no run {run_id} in {store.url} (give the --state it runs with)")
    run = RunState.replay(run_id, events)
    plan = store.run_plan(run_id)
    if step not in plan.steps_by_id:
        raise ScenarioError(f"run {run_id} has no step {step!r}")
    if run.step(step).state != "awaiting_approval":
        raise RefusedError(
            f"{step} of run {run_id} is not waiting for an approval (it is {run.step(step).state})"
        )
    clouds: dict[str, str] = {}
    if not run.sandbox:  # the approver's own credentials, as the clouds know them
        contexts = Contexts(plan, Options(), Path(store.work_dir))
        clouds = cloud_callers(plan, default_registry(), contexts, run_id, time.monotonic())
    started = started_by(events)
    answer(
        store,
        run_id,
        step,
        latest_request(events, step),
        granted=granted,
        by=who(),
        clouds=clouds,
        reason=reason or "",
        starter=started,
        two_person=bool(started.get("two_person")),
    )
    said = "approved" if granted else "denied"
    click.echo(f"{said} {step} of run {run_id} as {describe({'by': who(), 'clouds': clouds})}")


@main.command("approve")
@click.argument("run_id", metavar="RUN")
@click.argument("step", metavar="STEP")
@click.option("--reason", help="Why (journaled with the answer).")
@state_opt
@handle_errors
def approve(run_id: str, step: str, reason: str | None, state: str | None) -> None:
    """Approve a step a run waits on (apply --wait-for-approvals), from any terminal."""
    _answer(run_id, step, True, reason, state)


@main.command("deny")
@click.argument("run_id", metavar="RUN")
@click.argument("step", metavar="STEP")
@click.option("--reason", help="Why (journaled with the answer).")
@state_opt
@handle_errors
def deny(run_id: str, step: str, reason: str | None, state: str | None) -> None:
    """Deny a step a run waits on: the run stops there (and rolls back what it did, by default)."""
    _answer(run_id, step, False, reason, state)
