"""Commands that read, never write: check (readiness), status, history, report."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from failover.cli.app import (
    EXIT_BAD_INPUT,
    emit,
    fail,
    handle_errors,
    main,
    metrics_opt,
    metrics_target,
    output_opt,
    runbook_arg,
    scenario_options,
    state_of,
    state_opt,
)
from failover.formats import REPORT_FORMATS

if TYPE_CHECKING:
    from failover.engine import Readiness
    from failover.plan import Plan
from failover.redact import redact


@main.command()
@runbook_arg
@scenario_options
@click.option(
    "--sandbox", is_flag=True, help="Ask the runbook's sandbox (embedded clouds on 127.0.0.1) instead."
)
@click.option(
    "--skip-check",
    "skip_check",
    multiple=True,
    metavar="CHECK_ID",
    help="Do not ask this check (repeatable).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@metrics_opt
@handle_errors
def check(
    runbook: Path,
    from_: str,
    to: str,
    scope: tuple[str, ...],
    mode: str,
    sandbox: bool,
    skip_check: tuple[str, ...],
    fmt: str,
    metrics_file: Path | None,
) -> None:
    """Run every preflight check of a failover plan, read-only: is the target ready now?

    Exit 0 when ready, 3 when a check failed (each named, with what it saw). Changes nothing and
    journals nothing: run it on a schedule, in both directions.
    """
    from failover.engine import EXIT_REFUSED, Options, readiness
    from failover.metrics import readiness_metrics
    from failover.metrics import write as write_metrics
    from failover.plan import Scenario
    from failover.planner import make_plan
    from failover.runbook import load_runbook
    from failover.sandbox import Sandbox

    metrics = metrics_target(metrics_file)
    rb = load_runbook(runbook)
    scenario = Scenario.model_validate({"from": from_, "to": to, "mode": mode, "scope": scope})
    planned = make_plan(rb, scenario)
    unknown = sorted(set(skip_check) - {c.id for c in planned.preflight})
    if unknown:
        known = ", ".join(c.id for c in planned.preflight) or "none"
        raise click.UsageError(
            f"--skip-check {', '.join(unknown)}: not a preflight check of the plan ({known})"
        )
    options = Options(skip_checks=dict.fromkeys(skip_check, "--skip-check"))
    with contextlib.ExitStack() as stack:
        if sandbox:
            box = stack.enter_context(Sandbox(rb))
            options = replace(options, overrides=box.overrides())
        scratch = stack.enter_context(tempfile.TemporaryDirectory())
        results = readiness(planned, scratch, options)
    ready = not any(r.blocking for r in results)
    scenario_doc = planned.scenario.model_dump(mode="json", by_alias=True)
    if fmt == "json":
        doc = {
            "runbook": planned.runbook.name,
            "scenario": scenario_doc,
            "ready": ready,
            "checks": [
                {
                    "id": r.id,
                    "check": r.check,
                    "site": r.site,
                    "ok": r.ok,
                    "observed": r.observed,
                    "message": r.message,
                    "skipped": r.skipped,
                    "best_effort": r.best_effort,
                }
                for r in results
            ],
        }
        click.echo(json.dumps(redact(doc), indent=2))
    else:
        click.echo(_readiness_text(planned, results, ready))
    if metrics is not None:
        write_metrics(readiness_metrics(planned.runbook.name, scenario_doc, results, time.time()), metrics)
    sys.exit(0 if ready else EXIT_REFUSED)


def _readiness_text(planned: Plan, results: list[Readiness], ready: bool) -> str:
    scenario = planned.scenario
    lines = [
        f"Readiness of {planned.runbook.name}: {scenario.from_} -> {scenario.to} ({scenario.mode}), "
        f"{len(results)} preflight checks"
    ]
    for r in results:
        if r.skipped is not None:
            mark, what = "skip", f"skipped: {r.skipped}"
        else:
            mark = "ok" if r.ok else ("warn" if r.best_effort else "FAIL")
            message = redact(r.message)
            what = message if r.ok else f"{message} (observed {json.dumps(redact(r.observed))})"
        lines.append(f"  {mark:<4} {r.id} at {r.site}: {what}")
    failed = [r.id for r in results if r.blocking]
    lines.append("READY" if ready else f"NOT READY: {len(failed)} failed: {', '.join(failed)}")
    return "\n".join(lines)


@main.command()
@runbook_arg
@state_opt
@click.option("--sandbox", is_flag=True, help="The sandbox drills' runs (under STATE/sandbox) instead.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def history(runbook: Path, state: str | None, sandbox: bool, fmt: str) -> None:
    """Past runs of RUNBOOK from the journal: measured RTO per service and overall, predicted
    against measured, and the trend from drill to drill."""
    from failover.history import history as runbook_history
    from failover.history import journals, render_history
    from failover.runbook import load_runbook

    rb = load_runbook(runbook)
    data = runbook_history(rb.name, journals(state_of(state, rb.state), sandbox), tuple(rb.triggers))
    click.echo(json.dumps(data, indent=2) if fmt == "json" else render_history(data), nl=fmt == "json")


@main.command()
@click.argument("run_id", required=False)
@state_opt
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def status(run_id: str | None, state: str | None, fmt: str) -> None:
    """Show a run (default: the latest) as its journal tells it, or say there is none."""
    from failover.engine import run_ids, run_state
    from failover.engine.rollback import resources
    from failover.liveness import assess
    from failover.state import open_store
    from failover.state.store import stamp

    store = open_store(state_of(state), read_only=True)
    if run_id is None:
        ids = run_ids(store)
        if not ids:
            fail(f"no runs in {store.url}", EXIT_BAD_INPUT)
        run_id = ids[-1]
    current = run_state(store, run_id)
    holder = None if current.finished else store.holder(resources(store.run_plan(run_id)))
    held = None if holder is None or holder.run_id != run_id else holder
    now = time.time()
    alive = assess(run_id, current, held, now, state)
    waiting = {
        sid: {"on": rec.waiting_on, "for_s": round(now - rec.since, 1) if rec.since else None}
        for sid, rec in current.steps.items()
        if rec.waiting_on and not current.finished and not alive.label
    }
    if fmt == "json":
        doc = {
            "run_id": run_id,
            "status": current.status,
            "exit_code": current.exit_code,
            "message": current.message,
            "sandbox": current.sandbox,
            "interrupted": current.interrupted,
            "best_effort_failures": current.best_effort_failures,
            "steps": {sid: rec.state for sid, rec in current.steps.items()},
            "waiting": waiting,
            "in_doubt": [sid for sid, rec in current.steps.items() if rec.in_doubt],
            "held_by": None if held is None else held._asdict(),
            "liveness": alive.doc(),
        }
        click.echo(json.dumps(doc, indent=2))
        return
    labels = [f"exit {current.exit_code}"] if current.finished else []
    labels += [alive.label] if alive.label else ["sandbox drill"] if current.sandbox else []
    click.echo(f"run {run_id}: {current.status}" + (f" ({', '.join(labels)})" if labels else ""))
    if current.message:
        click.echo(f"  {current.message}")
    if held is not None:
        by = f" as {held.caller}" if held.caller else ""
        click.echo(f"  held by {held.owner}{by} since {stamp(held.since)}, lease until {stamp(held.until)}")
    if alive.why:
        click.echo(f"  ! {alive.why}")
    for command in alive.next:
        click.echo(f"  next: {command}")
    for sid, rec in current.steps.items():
        note = f"  {rec.error}" if rec.error and rec.state == "failed" else ""
        note += "  (in doubt: its change may have happened)" if rec.in_doubt else ""
        if sid in waiting:
            note += f"  waiting on {rec.waiting_on} for {waiting[sid]['for_s']}s"
        click.echo(f"  {rec.state:<12} {sid}{note}")


@main.command()
@click.argument("run_id")
@state_opt
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="markdown", show_default=True)
@output_opt
@handle_errors
def report(run_id: str, state: str | None, fmt: str, output: Path | None) -> None:
    """Report on RUN_ID: measured RTO per service, timeline, failures, approvals, rollback."""
    from failover.report import lag_checks, render_report, report_data
    from failover.state import open_store
    from failover.state.events import RunState

    journal = open_store(state_of(state), read_only=True)
    plan = journal.run_plan(run_id)
    events = journal.events(run_id)
    data = report_data(plan, RunState.replay(run_id, events), events, lag_checks=lag_checks())
    emit(render_report(data, fmt), output)  # type: ignore[arg-type]
